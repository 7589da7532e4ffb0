"""The codec's writers of the packets a client sends (CONNECT, SUBSCRIBE, PINGREQ, DISCONNECT)
at MQTT 3.1, 3.1.1 and 5.0, for the bridge, the one place where this broker is a client. Beside
broker.codec, which holds the broker's side (the parsers of what clients send, the writers of
its answers), and apart from it so that a board without a bridge does not keep them.
"""
from broker.bytesops import const, copy_into
from broker.codec import Connect, put_remaining_length, remaining_length_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Tuple, Union
    Buffer = Union[bytes, bytearray]

_CONNECT_FLAG_CLEAN_SESSION = const(0x02)
_CONNECT_FLAG_PASSWORD = const(0x40)
_CONNECT_FLAG_USERNAME = const(0x80)
_CONNECT_FLAG_WILL = const(0x04)
_CONNECT_FLAG_WILL_RETAIN = const(0x20)
_PROTOCOL_LEVEL_5 = const(5)


def put_pingreq(out: bytearray, pos: int) -> int:
    out[pos] = 0xC0
    out[pos + 1] = 0
    return pos + 2


def put_disconnect(out: bytearray, pos: int) -> int:
    out[pos] = 0xE0
    out[pos + 1] = 0
    return pos + 2


def put_binary(out: bytearray, pos: int, data: "Buffer") -> int:
    """A length-prefixed field (1.5.3): two bytes of length, then data; return the end offset."""
    n = len(data)
    out[pos] = n >> 8
    out[pos + 1] = n & 0xFF
    copy_into(out, pos + 2, data, 0, n)
    return pos + 2 + n


def _connect_fields(c: Connect) -> "List[bytes]":
    """The protocol name, then the payload's fields in their order [MQTT-3.1.3-1]."""
    fields = [c.protocol_name.encode(), c.client_id.encode()]
    if c.will_topic is not None:
        fields.append(c.will_topic)
        fields.append(c.will_payload)
    if c.username is not None:
        fields.append(c.username.encode())
    if c.password is not None:
        fields.append(c.password)
    return fields


def _connect_rl(c: Connect, fields: "List[bytes]", props: "Buffer") -> int:
    rl = 4  # the protocol level, the flags, the keep alive
    for f in fields:
        rl += 2 + len(f)
    if c.protocol_level == _PROTOCOL_LEVEL_5:
        rl += remaining_length_size(len(props)) + len(props)
        if c.will_topic is not None:
            rl += 1  # the will's Property Length: no will properties
    return rl


def connect_size(c: Connect, props: "Buffer" = b"") -> int:
    """Bytes the CONNECT that c describes takes on the wire (props: see put_connect)."""
    rl = _connect_rl(c, _connect_fields(c), props)
    return 1 + remaining_length_size(rl) + rl


def put_connect(out: bytearray, pos: int, c: Connect, props: "Buffer" = b"") -> int:
    """CONNECT [MQTT-3.1] as c describes it; the flags follow from the fields c has (a will, a
    user name, a password), and of c.flags only CleanSession (MQTT 5: Clean Start) is read.
    At protocol level 5, props are the CONNECT's properties, encoded (3.1.2.11), and a will
    has none."""
    fields = _connect_fields(c)
    flags = c.flags & _CONNECT_FLAG_CLEAN_SESSION
    if c.will_topic is not None:
        flags |= _CONNECT_FLAG_WILL | c.will_qos << 3
        if c.will_retain:
            flags |= _CONNECT_FLAG_WILL_RETAIN
    if c.username is not None:
        flags |= _CONNECT_FLAG_USERNAME
    if c.password is not None:
        flags |= _CONNECT_FLAG_PASSWORD
    out[pos] = 0x10
    pos = put_remaining_length(out, pos + 1, _connect_rl(c, fields, props))
    pos = put_binary(out, pos, fields[0])
    out[pos] = c.protocol_level
    out[pos + 1] = flags
    out[pos + 2] = c.keepalive >> 8
    out[pos + 3] = c.keepalive & 0xFF
    pos += 4
    v5 = c.protocol_level == _PROTOCOL_LEVEL_5
    if v5:
        pos = put_remaining_length(out, pos, len(props))
        copy_into(out, pos, props, 0, len(props))
        pos += len(props)
    for i in range(1, len(fields)):
        if i == 2 and v5 and c.will_topic is not None:
            out[pos] = 0  # the will's Property Length (3.1.3.2)
            pos += 1
        pos = put_binary(out, pos, fields[i])
    return pos


def _subscribe_rl(filters: "List[Tuple[bytes, int]]", v5: bool) -> int:
    rl = 3 if v5 else 2  # the packet identifier; MQTT 5: a Property Length of 0
    for f, options in filters:
        rl += 3 + len(f)
    return rl


def subscribe_size(filters: "List[Tuple[bytes, int]]", v5: bool = False) -> int:
    """Bytes a SUBSCRIBE of filters, (topic filter, requested QoS) pairs, takes on the wire."""
    rl = _subscribe_rl(filters, v5)
    return 1 + remaining_length_size(rl) + rl


def put_subscribe(out: bytearray, pos: int, mid: int, filters: "List[Tuple[bytes, int]]",
                  v5: bool = False) -> int:
    """SUBSCRIBE [MQTT-3.8]: the packet identifier, then each (topic filter, requested QoS);
    with v5, no properties, and each filter's byte is its Subscription Options (3.8.3.1)."""
    out[pos] = 0x82  # [MQTT-3.8.1-1]
    pos = put_remaining_length(out, pos + 1, _subscribe_rl(filters, v5))
    out[pos] = mid >> 8
    out[pos + 1] = mid & 0xFF
    pos += 2
    if v5:
        out[pos] = 0
        pos += 1
    for f, options in filters:
        pos = put_binary(out, pos, f)
        out[pos] = options
        pos += 1
    return pos
