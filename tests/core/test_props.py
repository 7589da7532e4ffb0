"""broker.props against the MQTT 5.0 specification (OASIS standard, 7 March 2019): the Variable
Byte Integer, every property in every packet, and every way a property block can be wrong.

Plain functions with plain asserts: pytest runs them on CPython, tools/mptest.py on MicroPython.
The property table below and every expected byte are written out by hand from the
specification (section 2.2.2.2), not produced by the code under test.
"""
from broker.codec import MalformedPacket, Publish
from broker import props as P
from broker.props import (
    ProtocolError,
    Props, decode_props, forwarded, put_pair_prop, put_str_prop, put_u8_prop, put_u16_prop,
    put_u32_prop, put_varint, put_varint_prop, read_varint, scan_publish_props, varint_size,
)
from support import MPY, SkipTest, raises_exactly

if MPY:
    import micropython

WILL, CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 0, 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH = 8, 9, 10, 11, 14, 15
ACKS = (PUBACK, PUBREC, PUBREL, PUBCOMP)
EVERY = (WILL, CONNECT, CONNACK, PUBLISH) + ACKS + (SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK,
                                                    DISCONNECT, AUTH)

# Table 2-4 (2.2.2.2): identifier -> (Props attribute, data type, packets that may carry it).
SPEC = {
    0x01: ("payload_format_indicator", "byte", (PUBLISH, WILL)),
    0x02: ("message_expiry_interval", "four", (PUBLISH, WILL)),
    0x03: ("content_type", "utf8", (PUBLISH, WILL)),
    0x08: ("response_topic", "utf8", (PUBLISH, WILL)),
    0x09: ("correlation_data", "binary", (PUBLISH, WILL)),
    0x0B: ("subscription_identifier", "vbi", (PUBLISH, SUBSCRIBE)),
    0x11: ("session_expiry_interval", "four", (CONNECT, CONNACK, DISCONNECT)),
    0x12: ("assigned_client_identifier", "utf8", (CONNACK,)),
    0x13: ("server_keep_alive", "two", (CONNACK,)),
    0x15: ("authentication_method", "utf8", (CONNECT, CONNACK, AUTH)),
    0x16: ("authentication_data", "binary", (CONNECT, CONNACK, AUTH)),
    0x17: ("request_problem_information", "byte", (CONNECT,)),
    0x18: ("will_delay_interval", "four", (WILL,)),
    0x19: ("request_response_information", "byte", (CONNECT,)),
    0x1A: ("response_information", "utf8", (CONNACK,)),
    0x1C: ("server_reference", "utf8", (CONNACK, DISCONNECT)),
    0x1F: ("reason_string", "utf8", (CONNACK, SUBACK, UNSUBACK, DISCONNECT, AUTH) + ACKS),
    0x21: ("receive_maximum", "two", (CONNECT, CONNACK)),
    0x22: ("topic_alias_maximum", "two", (CONNECT, CONNACK)),
    0x23: ("topic_alias", "two", (PUBLISH,)),
    0x24: ("maximum_qos", "byte", (CONNACK,)),
    0x25: ("retain_available", "byte", (CONNACK,)),
    0x26: ("user", "pair", EVERY),
    0x27: ("maximum_packet_size", "four", (CONNECT, CONNACK)),
    0x28: ("wildcard_subscription_available", "byte", (CONNACK,)),
    0x29: ("subscription_identifier_available", "byte", (CONNACK,)),
    0x2A: ("shared_subscription_available", "byte", (CONNACK,)),
}

# A valid value of each data type (1.5), and what it decodes to.
SAMPLE = {
    "byte": (b"\x01", 1),
    "two": (b"\x01\x02", 0x0102),
    "four": (b"\x01\x02\x03\x04", 0x01020304),
    "vbi": (b"\x81\x01", 129),
    "utf8": (b"\x00\x03a/b", "a/b"),
    "binary": (b"\x00\x03\x00\xff\x01", b"\x00\xff\x01"),
    "pair": (b"\x00\x01k\x00\x02vv", [("k", "vv")]),
}

UTF8_IDS = (0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F)
BYTE_IDS = (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A)

# Not UTF-8 as 1.5.4 defines it: U+0000, a surrogate (U+D800), an overlong form of '/',
# a lone continuation byte, a cut sequence, 0xFF, a code point past U+10FFFF.
BAD_UTF8 = (b"\x00", b"a\x00b", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80", b"\xe2\x82", b"\xff",
            b"\xf4\x90\x80\x80")


def block(body):
    """A Property Length (under 128 here) and the properties."""
    assert len(body) < 128
    return bytes((len(body),)) + body


def prop(pid, kind):
    return bytes((pid,)) + SAMPLE[kind][0]


def utf8(s):
    return bytes((0, len(s))) + s


def decoded(body, packet):
    data = block(body)
    p, end = decode_props(data, 0, len(data), packet)
    assert end == len(data)
    return p


def scanned(body):
    data = block(body) + b"payload"
    v = Publish()
    assert scan_publish_props(data, 0, len(data), v) == len(data) - 7
    assert v.props_start == 1
    return v


# ---- errors, identifiers -------------------------------------------------------------------------

def test_error_reason_codes():
    # 0x81 Malformed Packet, 0x82 Protocol Error (2.4, 4.13)
    assert MalformedPacket("m").reason == 0x81 and ProtocolError("p").reason == 0x82
    assert issubclass(ProtocolError, MalformedPacket)
    e = ProtocolError("alias")
    e.reason = 0x94
    assert e.reason == 0x94 and ProtocolError("p").reason == 0x82


def test_identifier_constants():
    assert (P.PAYLOAD_FORMAT_INDICATOR, P.MESSAGE_EXPIRY_INTERVAL, P.CONTENT_TYPE,
            P.RESPONSE_TOPIC, P.CORRELATION_DATA, P.SUBSCRIPTION_IDENTIFIER) == (1, 2, 3, 8, 9, 11)
    assert (P.SESSION_EXPIRY_INTERVAL, P.ASSIGNED_CLIENT_IDENTIFIER, P.SERVER_KEEP_ALIVE,
            P.AUTHENTICATION_METHOD, P.AUTHENTICATION_DATA, P.REQUEST_PROBLEM_INFORMATION,
            P.WILL_DELAY_INTERVAL, P.REQUEST_RESPONSE_INFORMATION, P.RESPONSE_INFORMATION,
            P.SERVER_REFERENCE, P.REASON_STRING) == (17, 18, 19, 21, 22, 23, 24, 25, 26, 28, 31)
    assert (P.RECEIVE_MAXIMUM, P.TOPIC_ALIAS_MAXIMUM, P.TOPIC_ALIAS, P.MAXIMUM_QOS,
            P.RETAIN_AVAILABLE, P.USER_PROPERTY, P.MAXIMUM_PACKET_SIZE,
            P.WILDCARD_SUBSCRIPTION_AVAILABLE, P.SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            P.SHARED_SUBSCRIPTION_AVAILABLE) == (33, 34, 35, 36, 37, 38, 39, 40, 41, 42)
    assert P.WILL == 0 and P.AUTH == 15


# ---- Variable Byte Integer (1.5.5) ---------------------------------------------------------------

VARINTS = (
    (0, b"\x00"), (1, b"\x01"), (127, b"\x7f"),
    (128, b"\x80\x01"), (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"), (2097151, b"\xff\xff\x7f"),
    (2097152, b"\x80\x80\x80\x01"), (268435455, b"\xff\xff\xff\x7f"),
)


def test_varint_encodings_MQTT_1_5_5():
    for n, enc in VARINTS:
        assert varint_size(n) == len(enc), n
        out = bytearray(b"\xee" * 7)
        assert put_varint(out, 1, n) == 1 + len(enc)
        assert bytes(out) == b"\xee" + enc + b"\xee" * (6 - len(enc)), n
        data = b"\xee" + enc + b"\xee"
        assert read_varint(data, 1, 1 + len(enc)) == n
        assert read_varint(data, 1, len(data)) == n  # stops at the byte without the top bit


def test_varint_not_minimal_or_too_long_MQTT_1_5_5_1():
    for enc in (b"\x80\x00", b"\xff\x00", b"\x80\x80\x00", b"\xff\xff\x00", b"\x80\x80\x80\x00",
                b"\xff\xff\xff\xff\x7f", b"\x80\x80\x80\x80\x01", b"\xff\xff\xff\xff\xff"):
        raises_exactly(MalformedPacket, read_varint, enc, 0, len(enc))


def test_varint_truncated():
    for enc in (b"", b"\x80", b"\xff\xff", b"\xff\xff\xff"):
        raises_exactly(MalformedPacket, read_varint, enc, 0, len(enc))
    raises_exactly(MalformedPacket, read_varint, b"\x80\x01", 0, 1)  # the end bounds the read


# ---- every property in every packet (2.2.2.2) ----------------------------------------------------

def test_no_properties():
    data = b"\xee\x00\xee"
    p, end = decode_props(data, 1, 3, CONNECT)
    assert end == 2
    for name, kind, packets in SPEC.values():
        assert getattr(p, name) == ([] if kind == "pair" else None), name
    v = scanned(b"")
    assert (v.alias, v.expiry, v.pfi, v.fwd) == (0, -1, 0, True)


def test_each_property_in_each_packet_MQTT_2_2_2_2():
    # A property in a packet that may not carry it is a Malformed Packet (2.2.2.2).
    for pid, (name, kind, packets) in SPEC.items():
        for packet in range(16):
            body = prop(pid, kind)
            if packet in packets:
                p = decoded(body, packet)
                assert getattr(p, name) == SAMPLE[kind][1], (pid, packet)
                for other, spec in SPEC.items():
                    if other != pid:
                        assert getattr(p, spec[0]) == ([] if spec[1] == "pair" else None)
            else:
                data = block(body)
                raises_exactly(MalformedPacket, decode_props, data, 0, len(data), packet)


def test_unknown_identifiers_malformed():
    for pid in range(256):
        if pid in SPEC:
            continue
        for body in (bytes((pid,)) + b"\x00\x00\x00\x00", bytes((pid, 0x01, 0x00))):
            data = block(body)
            for packet in EVERY:
                raises_exactly(MalformedPacket, decode_props, data, 0, len(data), packet)
            raises_exactly(MalformedPacket, scan_publish_props, data, 0, len(data), Publish())


def test_publish_properties_in_place():
    for pid, (name, kind, packets) in SPEC.items():
        body = prop(pid, kind)
        if pid == 0x0B:
            continue  # refused from a client: test_scan_subscription_identifier
        if PUBLISH in packets:
            v = scanned(body)
            assert v.alias == (0x0102 if pid == 0x23 else 0)
            assert v.expiry == (0x01020304 if pid == 0x02 else -1)
            assert v.pfi == (1 if pid == 0x01 else 0)
            assert v.fwd == (pid != 0x23 and pid != 0x02)
        else:
            data = block(body)
            raises_exactly(MalformedPacket, scan_publish_props, data, 0, len(data), Publish())


def test_scan_subscription_identifier_MQTT_3_3_4_6():
    for body in (b"\x0b\x01", b"\x26\x00\x00\x00\x00\x0b\x81\x01"):
        data = block(body)
        raises_exactly(ProtocolError, scan_publish_props, data, 0, len(data), Publish())


def test_scan_sets_every_field():
    body = (b"\x01\x01" b"\x02\x00\x00\x0e\x10" b"\x23\x00\x07" b"\x03\x00\x04text"
            b"\x26\x00\x01a\x00\x01b")
    v = scanned(body)
    assert (v.alias, v.expiry, v.pfi, v.fwd) == (7, 3600, 1, False)
    v = scanned(b"\x02\x00\x00\x00\x00")  # an expiry of 0 is still one to count down
    assert (v.alias, v.expiry, v.fwd) == (0, 0, False)
    v = scanned(b"\x01\x00\x09\x00\x01z\x26\x00\x00\x00\x00")
    assert (v.alias, v.expiry, v.pfi, v.fwd) == (0, -1, 0, True)
    data = b"\xee\xee" + block(b"\x01\x01") + b"pl"
    v = Publish()
    assert scan_publish_props(data, 2, len(data), v) == 5 and v.props_start == 3


# ---- duplicates ---------------------------------------------------------------------------------

def test_property_twice_protocol_error_MQTT_2_2_2_2():
    # "It is a Protocol Error to include <property> more than once" for each but User Property.
    for pid, (name, kind, packets) in SPEC.items():
        if pid == 0x26:
            continue
        body = prop(pid, kind) + b"\x26\x00\x00\x00\x00" + prop(pid, kind)
        data = block(body)
        for packet in packets:
            if pid == 0x0B and packet == PUBLISH:
                continue  # test_subscription_identifiers_in_publish
            raises_exactly(ProtocolError, decode_props, data, 0, len(data), packet)
        if PUBLISH in packets and pid != 0x0B:
            raises_exactly(ProtocolError, scan_publish_props, data, 0, len(data), Publish())


def test_user_properties_many_in_order_MQTT_3_3_2_18():
    # A User Property may appear many times, the same name too; the order is kept
    # [MQTT-3.3.2-18] (PUBLISH), and each packet's section says the same.
    body = (b"\x26\x00\x01z\x00\x011" b"\x26\x00\x01a\x00\x012" b"\x26\x00\x01z\x00\x013"
            b"\x26\x00\x00\x00\x00")
    for packet in EVERY:
        p = decoded(body, packet)
        assert p.user == [("z", "1"), ("a", "2"), ("z", "3"), ("", "")], packet
    assert Props().user == []  # a default shared by every Props is not appended to
    v = scanned(body)
    assert v.fwd and forwarded(block(body), 1, 1 + len(body)) == body


def test_subscription_identifiers_in_publish():
    # A PUBLISH to a client carries one per matching subscription [MQTT-3.3.4-3] (decode_props
    # reads a server's PUBLISH, as a bridge does): the first is kept.
    p = decoded(b"\x0b\x05\x0b\x81\x01", PUBLISH)
    assert p.subscription_identifier == 5


# ---- truncation and lengths ---------------------------------------------------------------------

def test_property_length_beyond_packet():
    for data in (b"\x05\x01\x01", b"\x01", b"\x80\x01\x01\x01", b"\x80", b"\x80\x00"):
        raises_exactly(MalformedPacket, decode_props, data, 0, len(data), PUBLISH)
        raises_exactly(MalformedPacket, scan_publish_props, data, 0, len(data), Publish())
    data = b"\x02\x01\x01\x01\x00"  # the block ends before the packet: end is what bounds it
    raises_exactly(MalformedPacket, decode_props, data, 0, 2, PUBLISH)


def test_values_cut_short_malformed():
    for pid, (name, kind, packets) in SPEC.items():
        whole = prop(pid, kind)
        for n in range(1, len(whole)):
            data = block(whole[:n]) + whole[n:]  # the Property Length ends inside the value
            raises_exactly(MalformedPacket, decode_props, data, 0, len(data), packets[0])
            if PUBLISH in packets:
                raises_exactly(MalformedPacket, scan_publish_props, data, 0, len(data), Publish())
    for body in (b"\x03\x00\x05abc", b"\x26\x00\x01a\x00\x05b", b"\x09\xff\xff"):
        data = block(body) + b"\x00" * 8
        raises_exactly(MalformedPacket, decode_props, data, 0, len(data), PUBLISH)
        raises_exactly(MalformedPacket, scan_publish_props, data, 0, len(data), Publish())


def test_long_property_block():
    # a Property Length of two bytes: 200 bytes of Correlation Data
    body = b"\x09\x00\xc5" + b"\x07" * 197
    data = b"\xc8\x01" + body + b"rest"
    p, end = decode_props(data, 0, len(data), WILL)
    assert end == 202 and p.correlation_data == b"\x07" * 197
    v = Publish()
    assert scan_publish_props(data, 0, len(data), v) == 202 and v.props_start == 2


# ---- UTF-8 (1.5.4, 1.5.7) -----------------------------------------------------------------------

def test_bad_utf8_malformed_MQTT_1_5_4_1_MQTT_1_5_4_2_MQTT_1_5_7_1():
    for bad in BAD_UTF8:
        bodies = [bytes((pid,)) + utf8(bad) for pid in UTF8_IDS]
        bodies.append(b"\x26" + utf8(bad) + utf8(b"v"))
        bodies.append(b"\x26" + utf8(b"n") + utf8(bad))
        for body in bodies:
            data = block(body)
            raises_exactly(MalformedPacket, decode_props, data, 0, len(data), SPEC[body[0]][2][0])
            if body[0] in (0x03, 0x08, 0x26):
                raises_exactly(MalformedPacket, scan_publish_props, data, 0, len(data), Publish())
        # Binary Data may hold any bytes
        assert decoded(b"\x09" + utf8(bad), PUBLISH).correlation_data == bad


def test_utf8_accepted():
    s = b"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbb\xbf"  # 2, 3 and 4 bytes, a BOM
    p = decoded(b"\x03" + utf8(s) + b"\x26" + utf8(s) + utf8(s), PUBLISH)
    text = "caf\u00e9 \u20ac \U0001f600 \ufeff"
    assert p.content_type == text and p.user == [(text, text)]
    scanned(b"\x03" + utf8(s))


# ---- value ranges -------------------------------------------------------------------------------

def test_byte_properties_zero_or_one():
    # "It is a Protocol Error to ... have a value other than 0 or 1" (3.1.2.11.6, 3.1.2.11.7,
    # 3.2.2.3.4, 3.2.2.3.5, 3.2.2.3.11-13); Payload Format Indicator has only those two
    # values (3.3.2.3.2).
    for pid in BYTE_IDS:
        name, kind, packets = SPEC[pid]
        for v in (0, 1):
            assert getattr(decoded(bytes((pid, v)), packets[0]), name) == v
        for v in (2, 0x80, 0xFF):
            data = block(bytes((pid, v)))
            raises_exactly(ProtocolError, decode_props, data, 0, len(data), packets[0])
            if pid == 0x01:
                raises_exactly(ProtocolError, scan_publish_props, data, 0, len(data), Publish())


def test_zero_protocol_error():
    # Receive Maximum 0 (3.1.2.11.3, 3.2.2.3.3), Maximum Packet Size 0 (3.1.2.11.4, 3.2.2.3.6),
    # Topic Alias 0 [MQTT-3.3.2-8], Subscription Identifier 0 (3.8.2.1.2).
    for body, packet in ((b"\x21\x00\x00", CONNECT), (b"\x21\x00\x00", CONNACK),
                         (b"\x27\x00\x00\x00\x00", CONNECT), (b"\x27\x00\x00\x00\x00", CONNACK),
                         (b"\x23\x00\x00", PUBLISH), (b"\x0b\x00", SUBSCRIBE),
                         (b"\x0b\x00", PUBLISH)):
        data = block(body)
        raises_exactly(ProtocolError, decode_props, data, 0, len(data), packet)
    data = block(b"\x23\x00\x00")
    raises_exactly(ProtocolError, scan_publish_props, data, 0, len(data), Publish())


def test_zero_allowed_and_largest_values():
    p = decoded(b"\x11\x00\x00\x00\x00\x22\x00\x00\x21\xff\xff\x27\xff\xff\xff\xff", CONNECT)
    assert (p.session_expiry_interval, p.topic_alias_maximum) == (0, 0)
    assert (p.receive_maximum, p.maximum_packet_size) == (65535, 4294967295)
    p = decoded(b"\x13\x00\x00\x11\xff\xff\xff\xff", CONNACK)
    assert (p.server_keep_alive, p.session_expiry_interval) == (0, 4294967295)
    p = decoded(b"\x0b\xff\xff\xff\x7f", SUBSCRIBE)
    assert p.subscription_identifier == 268435455
    data = block(b"\x0b\x80\x80\x80\x80\x01")  # no Variable Byte Integer is larger
    raises_exactly(MalformedPacket, decode_props, data, 0, len(data), SUBSCRIBE)
    data = block(b"\x0b\x80\x00")
    raises_exactly(MalformedPacket, decode_props, data, 0, len(data), SUBSCRIBE)
    p = decoded(b"\x18\xff\xff\xff\xff\x02\x00\x00\x00\x00", WILL)
    assert (p.will_delay_interval, p.message_expiry_interval) == (4294967295, 0)
    v = scanned(b"\x02\x3f\xff\xff\xff\x23\xff\xff")
    assert (v.expiry, v.alias) == (0x3FFFFFFF, 0xFFFF)


def test_response_topic_a_topic_name_MQTT_3_3_2_14():
    for bad in (b"a/+", b"#", b"a/#", b"+", b""):
        data = block(b"\x08" + utf8(bad))
        for packet in (PUBLISH, WILL):
            raises_exactly(ProtocolError, decode_props, data, 0, len(data), packet)
        raises_exactly(ProtocolError, scan_publish_props, data, 0, len(data), Publish())
    assert decoded(b"\x08" + utf8(b"reply/to/me"), WILL).response_topic == "reply/to/me"


# ---- forwarded ----------------------------------------------------------------------------------

def test_forwarded_drops_alias_expiry_and_will_delay_MQTT_3_3_2_7():
    body = (b"\x23\x00\x01" b"\x01\x01" b"\x02\x00\x00\x00\x3c" b"\x26\x00\x01a\x00\x01b"
            b"\x18\x00\x00\x00\x05" b"\x08\x00\x01r" b"\x09\x00\x00" b"\x26\x00\x01c\x00\x00")
    data = b"\xee" + block(body) + b"payload"
    assert forwarded(data, 2, 2 + len(body)) == (
        b"\x01\x01" b"\x26\x00\x01a\x00\x01b" b"\x08\x00\x01r" b"\x09\x00\x00"
        b"\x26\x00\x01c\x00\x00")
    assert forwarded(data, 2, 2) == b""
    assert forwarded(b"\x23\x00\x01\x02\x00\x00\x00\x01", 0, 8) == b""


# ---- writers ------------------------------------------------------------------------------------

def test_writers():
    out = bytearray(b"\xee" * 40)
    pos = put_u8_prop(out, 1, 0x24, 1)
    pos = put_u16_prop(out, pos, 0x21, 0x1234)
    pos = put_u32_prop(out, pos, 0x11, 0xFFFFFFFE)
    pos = put_varint_prop(out, pos, 0x0B, 16384)
    pos = put_str_prop(out, pos, 0x12, b"id")
    pos = put_str_prop(out, pos, 0x09, b"")
    pos = put_pair_prop(out, pos, b"k", b"vw")
    assert pos == 31
    assert bytes(out) == (b"\xee" b"\x24\x01" b"\x21\x12\x34" b"\x11\xff\xff\xff\xfe"
                          b"\x0b\x80\x80\x01" b"\x12\x00\x02id" b"\x09\x00\x00"
                          b"\x26\x00\x01k\x00\x02vw") + b"\xee" * 9


# ---- no allocation on the routing path -----------------------------------------------------------

def test_hot_paths_allocate_nothing():
    if not MPY:
        raise SkipTest("heap_lock exists only on MicroPython")
    body = (b"\x01\x01" b"\x03\x00\x0atext/plain" b"\x08\x00\x05r/e/p" b"\x09\x00\x02\x00\x01"
            b"\x26\x00\x04name\x00\x05value" b"\x26\x00\x01a\x00\x01b")
    data = bytearray(block(body) + b"payload")
    n = len(data)
    v = Publish()
    out = bytearray(8)
    enc = b"\xff\xff\xff\x7f"
    big = 268435455
    micropython.heap_lock()
    try:
        for _ in range(100):
            end = scan_publish_props(data, 0, n, v)
            size = varint_size(big)
            put_varint(out, 0, big)
            value = read_varint(enc, 0, 4)
    finally:
        micropython.heap_unlock()
    assert end == n - 7 and v.fwd and v.pfi == 1
    assert size == 4 and value == big and bytes(out[:4]) == enc
