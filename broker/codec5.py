"""MQTT 5.0 packets, the broker's side: the parsers of what a v5 client sends beyond PUBLISH (whose
properties broker.props scans in place) and the writers of the packets that gained a reason code
and properties. Beside broker.codec, which frames every version's packets; only v5 code imports
this module.
"""
from broker.bytesops import const, copy_into
from broker.codec import (
    Connect, MalformedPacket, put_publish_head, put_remaining_length, read_binary, read_string,
    read_u16, remaining_length_size,
)
from broker.props import (
    ProtocolError,
    MESSAGE_EXPIRY_INTERVAL, SUBSCRIPTION_IDENTIFIER, WILL, Props, decode_props, forwarded,
    put_u32_prop, put_varint, put_varint_prop, read_varint, varint_size,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Tuple, Union
    Buffer = Union[bytes, bytearray]

_CONNECT = const(1)
_PUBACK = const(4)
_SUBSCRIBE = const(8)
_UNSUBSCRIBE = const(10)
_DISCONNECT = const(14)

_CONNECT_FLAG_PASSWORD = const(0x40)
_CONNECT_FLAG_RESERVED = const(0x01)
_CONNECT_FLAG_USERNAME = const(0x80)
_CONNECT_FLAG_WILL = const(0x04)
_CONNECT_FLAG_WILL_RETAIN = const(0x20)

_OPTION_RESERVED = const(0xC0)
_OPTION_QOS = const(0x03)
_OPTION_RETAIN_HANDLING = const(0x30)


# ---- Parsers ----

def _field_end(buf: "Buffer", pos: int, end: int) -> int:
    return pos + 2 + read_u16(buf, pos, end)


def decode_connect5(buf: "Buffer", pos: int, end: int, c: Connect) -> None:
    """The rest of a CONNECT after its protocol level 5 (3.1.2.3 on): c gains `props`,
    `will_props` (None without a will) and `will_fwd` (the will's properties as they are sent
    on). Unlike 3.1.1, a password may come without a user name (3.1.2.9)."""
    if pos + 3 > end:
        raise MalformedPacket("truncated CONNECT variable header")
    flags = buf[pos]
    c.flags = flags
    c.keepalive = read_u16(buf, pos + 1, end)
    if flags & _CONNECT_FLAG_RESERVED:
        raise MalformedPacket("CONNECT reserved flag set")  # [MQTT-3.1.2-3]
    will_qos = (flags >> 3) & 3
    if flags & _CONNECT_FLAG_WILL:
        if will_qos == 3:
            raise MalformedPacket("will QoS 3")  # [MQTT-3.1.2-12]
    elif will_qos or flags & _CONNECT_FLAG_WILL_RETAIN:
        # [MQTT-3.1.2-11] [MQTT-3.1.2-13]
        raise MalformedPacket("will QoS or retain set without will flag")
    c.props, pos = decode_props(buf, pos + 3, end, _CONNECT)
    c.client_id = read_string(buf, pos, end)
    pos = _field_end(buf, pos, end)
    c.will_props = None
    c.will_fwd = b""
    if flags & _CONNECT_FLAG_WILL:
        start = pos + varint_size(read_varint(buf, pos, end))
        c.will_props, pos = decode_props(buf, pos, end, WILL)
        c.will_fwd = forwarded(buf, start, pos)
        c.will_topic = read_binary(buf, pos, end)
        pos = _field_end(buf, pos, end)
        c.will_payload = read_binary(buf, pos, end)
        pos = _field_end(buf, pos, end)
        c.will_qos = will_qos
        c.will_retain = bool(flags & _CONNECT_FLAG_WILL_RETAIN)
    if flags & _CONNECT_FLAG_USERNAME:
        c.username = read_string(buf, pos, end)
        pos = _field_end(buf, pos, end)
    if flags & _CONNECT_FLAG_PASSWORD:
        c.password = read_binary(buf, pos, end)
        pos = _field_end(buf, pos, end)
    if pos != end:
        raise MalformedPacket("unexpected bytes after CONNECT payload")


def decode_subscribe5(buf: "Buffer", pos: int, end: int
                      ) -> "Tuple[int, Props, List[Tuple[bytes, int]]]":
    """SUBSCRIBE body -> (packet id, properties, [(filter, subscription options)]). The options
    byte: QoS in bits 0-1, No Local 2, Retain As Published 3, Retain Handling 4-5 (3.8.3.1)."""
    mid = read_u16(buf, pos, end)
    props, pos = decode_props(buf, pos + 2, end, _SUBSCRIBE)
    topics = []
    while pos < end:
        filt = read_binary(buf, pos, end)
        pos = _field_end(buf, pos, end)
        if pos >= end:
            raise MalformedPacket("SUBSCRIBE filter without subscription options")
        opts = buf[pos]
        pos += 1
        if opts & _OPTION_RESERVED:
            raise MalformedPacket("subscription options reserved bits set")  # [MQTT-3.8.3-5]
        if opts & _OPTION_QOS == _OPTION_QOS:
            raise ProtocolError("subscription options QoS 3")
        if opts & _OPTION_RETAIN_HANDLING == _OPTION_RETAIN_HANDLING:
            raise ProtocolError("subscription options Retain Handling 3")
        topics.append((filt, opts))
    if not topics:
        raise ProtocolError("SUBSCRIBE with no topic filter")  # [MQTT-3.8.3-2]
    return mid, props, topics


def decode_unsubscribe5(buf: "Buffer", pos: int, end: int) -> "Tuple[int, Props, List[bytes]]":
    mid = read_u16(buf, pos, end)
    props, pos = decode_props(buf, pos + 2, end, _UNSUBSCRIBE)
    filters = []
    while pos < end:
        filters.append(read_binary(buf, pos, end))
        pos = _field_end(buf, pos, end)
    if not filters:
        raise ProtocolError("UNSUBSCRIBE with no topic filter")  # [MQTT-3.10.3-2]
    return mid, props, filters


def decode_ack5(buf: "Buffer", pos: int, end: int) -> "Tuple[int, int]":
    """PUBACK, PUBREC, PUBREL or PUBCOMP body -> (packet id, reason code): 2 bytes mean reason 0,
    3 a reason without properties (3.4.2.1); properties are checked, then dropped."""
    mid = read_u16(buf, pos, end)
    if end - pos == 2:
        return mid, 0
    reason = buf[pos + 2]
    if end - pos > 3:
        _, p = decode_props(buf, pos + 3, end, _PUBACK)  # the four acks allow the same ones
        if p != end:
            raise MalformedPacket("unexpected bytes after acknowledgement properties")
    return mid, reason


def decode_disconnect5(buf: "Buffer", pos: int, end: int) -> "Tuple[int, Props]":
    """DISCONNECT body -> (reason code, properties); an empty body is reason 0 (3.14.2.1)."""
    if pos == end:
        return 0, Props()
    reason = buf[pos]
    if end - pos == 1:
        return reason, Props()
    props, p = decode_props(buf, pos + 1, end, _DISCONNECT)
    if p != end:
        raise MalformedPacket("unexpected bytes after DISCONNECT properties")
    return reason, props


# ---- Writers into a preallocated buffer; each returns the end offset ----

def _size(rl: int) -> int:
    return 1 + remaining_length_size(rl) + rl


def _put_props(out: bytearray, pos: int, props: "Buffer") -> int:
    n = len(props)
    pos = put_remaining_length(out, pos, n)
    copy_into(out, pos, props, 0, n)
    return pos + n


def connack5_size(props_len: int) -> int:
    return _size(2 + varint_size(props_len) + props_len)


def put_connack5(out: bytearray, pos: int, session_present: bool, reason: int,
                 props: "Buffer") -> int:
    """CONNACK (3.2): the acknowledge flags, the reason code, the properties."""
    n = len(props)
    out[pos] = 0x20
    pos = put_remaining_length(out, pos + 1, 2 + varint_size(n) + n)
    out[pos] = 1 if session_present else 0
    out[pos + 1] = reason
    return _put_props(out, pos + 2, props)


def _ack5_rl(reason: int, props_len: int) -> int:
    if props_len:
        return 3 + varint_size(props_len) + props_len
    return 3 if reason else 2


def ack5_size(reason: int, props_len: int) -> int:
    return _size(_ack5_rl(reason, props_len))


def put_ack5(out: bytearray, pos: int, b0: int, mid: int, reason: int, props: "Buffer") -> int:
    """PUBACK, PUBREC, PUBREL or PUBCOMP (b0): reason 0 without properties is the 3.1.1 form,
    a reason without properties leaves out the Property Length (3.4.2.1)."""
    rl = _ack5_rl(reason, len(props))
    out[pos] = b0
    pos = put_remaining_length(out, pos + 1, rl)
    out[pos] = mid >> 8
    out[pos + 1] = mid & 0xFF
    if rl == 2:
        return pos + 2
    out[pos + 2] = reason
    if rl == 3:
        return pos + 3
    return _put_props(out, pos + 3, props)


def suback5_size(n: int, props_len: int) -> int:
    return _size(2 + varint_size(props_len) + props_len + n)


def _put_codes(out: bytearray, pos: int, b0: int, mid: int, codes: "List[int]",
               props: "Buffer") -> int:
    """SUBACK or UNSUBACK (b0): the packet identifier, the properties, a reason code per filter."""
    n = len(props)
    out[pos] = b0
    pos = put_remaining_length(out, pos + 1, 2 + varint_size(n) + n + len(codes))
    out[pos] = mid >> 8
    out[pos + 1] = mid & 0xFF
    pos = _put_props(out, pos + 2, props)
    for c in codes:
        out[pos] = c
        pos += 1
    return pos


def put_suback5(out: bytearray, pos: int, mid: int, codes: "List[int]", props: "Buffer") -> int:
    return _put_codes(out, pos, 0x90, mid, codes, props)


unsuback5_size = suback5_size


def put_unsuback5(out: bytearray, pos: int, mid: int, codes: "List[int]",
                  props: "Buffer") -> int:
    return _put_codes(out, pos, 0xB0, mid, codes, props)


def _disconnect5_rl(reason: int, props_len: int) -> int:
    if props_len:
        return 1 + varint_size(props_len) + props_len
    return 1 if reason else 0


def disconnect5_size(reason: int, props_len: int) -> int:
    return _size(_disconnect5_rl(reason, props_len))


def put_disconnect5(out: bytearray, pos: int, reason: int, props: "Buffer") -> int:
    """DISCONNECT (3.14): reason 0 without properties is the empty 3.1.1 form (3.14.2.1)."""
    rl = _disconnect5_rl(reason, len(props))
    out[pos] = 0xE0
    pos = put_remaining_length(out, pos + 1, rl)
    if rl == 0:
        return pos
    out[pos] = reason
    if rl == 1:
        return pos + 1
    return _put_props(out, pos + 1, props)


def publish5_props_len(fwd_len: int, subid: int, expiry: int) -> int:
    """The Property Length of an outgoing PUBLISH: fwd_len bytes sent on as they came, a
    Subscription Identifier when subid > 0, a Message Expiry Interval when expiry >= 0."""
    n = fwd_len
    if subid > 0:
        n += 1 + varint_size(subid)
    if expiry >= 0:
        n += 5
    return n


def publish5_size(b0: int, tlen: int, props_len: int, plen: int) -> int:
    rl = 2 + tlen + varint_size(props_len) + props_len + plen
    if b0 & 0x06:
        rl += 2
    return _size(rl)


def put_publish5(out: bytearray, pos: int, b0: int, mid: int, src: "Buffer", ts: int, te: int,
                 pps: int, ps: int, pe: int, subid: int, expiry: int) -> int:
    """A PUBLISH whose topic is src[ts:te], its properties a Subscription Identifier (subid > 0),
    a Message Expiry Interval (expiry >= 0) and src[pps:ps], its payload src[ps:pe]. Allocates
    nothing."""
    plen = publish5_props_len(ps - pps, subid, expiry)
    pos = put_publish_head(out, pos, b0, 2 + te - ts + varint_size(plen) + plen + pe - ps, mid,
                           src, ts, te)
    pos = put_varint(out, pos, plen)
    if subid > 0:
        pos = put_varint_prop(out, pos, SUBSCRIPTION_IDENTIFIER, subid)
    if expiry >= 0:
        pos = put_u32_prop(out, pos, MESSAGE_EXPIRY_INTERVAL, expiry)
    copy_into(out, pos, src, pps, ps - pps)
    pos += ps - pps
    copy_into(out, pos, src, ps, pe - ps)
    return pos + pe - ps
