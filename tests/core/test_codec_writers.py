"""The codec's writers of the packets the broker answers with: CONNACK, SUBACK, PINGRESP.

Each writes in place at an offset of a pre-sized buffer and returns where it stopped; the
expected bytes are written out by hand from the specification.
"""
from broker.codec import put_connack, put_pingresp, put_suback, suback_size


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
