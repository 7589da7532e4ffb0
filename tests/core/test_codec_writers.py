"""The codec's writers of the packets the broker answers with (CONNACK, SUBACK, PINGRESP) and
of those a bridge sends as a client (CONNECT, SUBSCRIBE, PINGREQ, DISCONNECT).

Each writes in place at an offset of a pre-sized buffer and returns where it stopped; the
expected bytes are written out by hand from the specification.
"""
from broker.codec import Connect, decode_connect, put_connack, put_pingresp, put_suback, suback_size
from broker.codec_client import (
    connect_size, put_binary, put_connect, put_disconnect, put_pingreq, put_subscribe,
    subscribe_size,
)


def test_connack_is_four_bytes_flag_then_code() -> None:
    # [MQTT-3.2.2-1]: bits 7-1 of the acknowledge flags are reserved, 0; bit 0 session present
    out = bytearray(b"\xee" * 6)
    assert put_connack(out, 1, True, 0) == 5
    assert bytes(out) == b"\xee\x20\x02\x01\x00\xee"
    assert put_connack(out, 1, False, 5) == 5
    assert bytes(out) == b"\xee\x20\x02\x00\x05\xee"


def test_pingresp_is_two_bytes() -> None:
    out = bytearray(b"\xee" * 4)
    assert put_pingresp(out, 1) == 3
    assert bytes(out) == b"\xee\xd0\x00\xee"


def test_suback_has_one_return_code_per_filter_in_order() -> None:
    # [MQTT-3.8.4-5] [MQTT-3.9.3-1]
    codes = [0, 1, 2, 0x80]
    assert suback_size(len(codes)) == 8
    out = bytearray(b"\xee" * 10)
    assert put_suback(out, 1, 0x1234, codes) == 9
    assert bytes(out) == b"\xee\x90\x06\x12\x34\x00\x01\x02\x80\xee"


def test_suback_remaining_length_past_127_takes_two_bytes() -> None:
    # 126 codes + the packet identifier: Remaining Length 128, written 0x80 0x01 [MQTT-2.2.3]
    codes = [1] * 126
    assert suback_size(126) == 1 + 2 + 128
    out = bytearray(131)
    assert put_suback(out, 0, 7, codes) == 131
    assert bytes(out[0:5]) == b"\x90\x80\x01\x00\x07"
    assert bytes(out[5:]) == b"\x01" * 126


def written(size: int, put: "object", *args: "object") -> bytes:
    """What put(out, pos, *args) writes at offset 3 of a buffer with garbage around it, after
    checking that it ends where size says and touches nothing else."""
    out = bytearray(b"\xee" * (size + 6))
    assert put(out, 3, *args) == 3 + size  # type: ignore[operator]
    assert out[0:3] == b"\xee\xee\xee" and out[3 + size:] == b"\xee\xee\xee"
    return bytes(out[3:3 + size])


def test_pingreq_and_disconnect_are_two_bytes() -> None:
    assert written(2, put_pingreq) == b"\xc0\x00"  # 3.12
    assert written(2, put_disconnect) == b"\xe0\x00"  # 3.14


def test_binary_is_its_length_then_its_bytes() -> None:
    # 1.5.3: two bytes of length, most significant first
    assert written(5, put_binary, b"abc") == b"\x00\x03abc"
    assert written(2, put_binary, b"") == b"\x00\x00"


def test_connect_clean_session_and_a_client_id() -> None:
    c = Connect()
    c.protocol_name = "MQTT"
    c.protocol_level = 4
    c.flags = 0x02
    c.keepalive = 60
    c.client_id = "hub7"
    # 3.1: 0x10, Remaining Length 16, "MQTT", level 4, CleanSession only, keep alive 60, the
    # client id
    want = bytes((0x10, 0x10, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C,
                  0x00, 0x04, 0x68, 0x75, 0x62, 0x37))
    assert connect_size(c) == len(want)
    assert written(len(want), put_connect, c) == want


def test_connect_every_field_in_order_its_flags_from_them() -> None:
    c = Connect()
    c.protocol_name = "MQTT"
    c.protocol_level = 0x84  # mosquitto's bridge bit on level 4
    c.keepalive = 30
    c.client_id = "c"
    c.will_topic = b"s/t"
    c.will_payload = b"0"
    c.will_qos = 1
    c.will_retain = True
    c.username = "u"
    c.password = b"pw"
    # flags: user name 0x80, password 0x40, will retain 0x20, will QoS 1 0x08, will 0x04; the
    # payload in the order of 3.1.3 [MQTT-3.1.3-1]: client id, will topic, will message, user
    # name, password
    want = bytes((0x10, 0x1C, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x84, 0xEC, 0x00, 0x1E,
                  0x00, 0x01, 0x63, 0x00, 0x03, 0x73, 0x2F, 0x74, 0x00, 0x01, 0x30,
                  0x00, 0x01, 0x75, 0x00, 0x02, 0x70, 0x77))
    assert connect_size(c) == len(want)
    assert written(len(want), put_connect, c) == want
    c.protocol_level = 4
    c.flags = 0x02
    c.will_topic = None
    c.password = None  # a user name alone: 0x80, and CleanSession 0x02
    data = written(connect_size(c), put_connect, c)
    p = decode_connect(data, 2, len(data))
    assert p.flags == 0x82 and p.username == "u" and p.password is None
    assert p.will_topic is None and p.clean_session and p.keepalive == 30


def test_connect_31_with_a_long_client_id() -> None:
    c = Connect()
    c.protocol_name = "MQIsdp"
    c.protocol_level = 3
    c.client_id = "x" * 200
    # Remaining Length 2 + 6 + 4 + 2 + 200 = 214: two bytes, 0xD6 0x01 [MQTT-2.2.3]
    want = bytes((0x10, 0xD6, 0x01, 0x00, 0x06, 0x4D, 0x51, 0x49, 0x73, 0x64, 0x70, 0x03,
                  0x00, 0x00, 0x00, 0x00, 0xC8)) + b"x" * 200
    assert connect_size(c) == len(want)
    assert written(len(want), put_connect, c) == want


def test_connect_5_properties_after_the_keep_alive_and_an_empty_will_property_length() -> None:
    c = Connect()
    c.protocol_name = "MQTT"
    c.protocol_level = 5
    c.keepalive = 10
    c.client_id = "c"
    c.will_topic = b"w"
    c.will_payload = b"0"
    # 3.1.2.11: the Property Length (3) and a Receive Maximum of 20 after the keep alive; the
    # payload: client id, the will's Property Length (0), will topic, will payload
    # [MQTT-3.1.3-1]
    want = bytes((0x10, 0x18, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x04, 0x00, 0x0A,
                  0x03, 0x21, 0x00, 0x14, 0x00, 0x01, 0x63, 0x00, 0x00, 0x01, 0x77,
                  0x00, 0x01, 0x30))
    props = b"\x21\x00\x14"
    assert connect_size(c, props) == len(want)
    assert written(len(want), put_connect, c, props) == want
    c.will_topic = None  # no will, no properties: a Property Length of 0 [MQTT-2.2.2-1]
    want = bytes((0x10, 0x0E, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x00, 0x00, 0x0A,
                  0x00, 0x00, 0x01, 0x63))
    assert connect_size(c) == len(want)
    assert written(len(want), put_connect, c) == want


def test_subscribe_5_its_property_length_then_subscription_options() -> None:
    filters = [(b"a/b", 0x0D)]  # QoS 1, No Local, Retain As Published (3.8.3.1)
    want = bytes((0x82, 0x09, 0x00, 0x07, 0x00, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x0D))
    assert subscribe_size(filters, True) == len(want)
    assert written(len(want), put_subscribe, 7, filters, True) == want


def test_subscribe_each_filter_with_its_requested_qos() -> None:
    filters = [(b"a/b", 1), (b"c/#", 2)]
    # 3.8: 0x82 [MQTT-3.8.1-1], packet identifier 1, each filter and its requested QoS
    want = bytes((0x82, 0x0E, 0x00, 0x01, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x01,
                  0x00, 0x03, 0x63, 0x2F, 0x23, 0x02))
    assert subscribe_size(filters) == len(want)
    assert written(len(want), put_subscribe, 1, filters) == want
    many = [(b"f" * 60, 0), (b"g" * 60, 2)]  # Remaining Length 2 + 63 + 63 = 128: two bytes
    want = (bytes((0x82, 0x80, 0x01, 0xAB, 0xCD, 0x00, 0x3C)) + b"f" * 60
            + bytes((0x00, 0x00, 0x3C)) + b"g" * 60 + bytes((0x02,)))
    assert subscribe_size(many) == len(want)
    assert written(len(want), put_subscribe, 0xABCD, many) == want
