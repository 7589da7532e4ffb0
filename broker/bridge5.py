"""MQTT 5.0 for a bridge (`bridge_protocol_version mqttv50`): what a bridge adds to broker.bridge
when it speaks 5.0 to the remote broker. Imported by a Bridge set to mqttv50 only, with broker.v5
(and its property codec), which it makes the Broker's own as a first v5 client would.

The link is a v5 connection like a client's: its Conn has level 5 and a Remote (a broker.v5
State) holding what the remote broker's CONNACK said, so that the engine's pieces the bridge
reuses (the in-flight window, broker.v5's send_stored, the acknowledgements' Reason Codes) honour
the remote's Receive Maximum and Maximum Packet Size as they honour a client's. Properties cross
the bridge as bytes both ways, as the engine forwards them (docs/design.md).
"""
from broker import v5
from broker.bytesops import const
from broker.codec import MalformedPacket
from broker.codec5 import decode_disconnect5, disconnect5_size, put_disconnect5
from broker.props import (
    MAXIMUM_PACKET_SIZE, RECEIVE_MAXIMUM, SESSION_EXPIRY_INTERVAL, decode_props, forwarded,
    put_u16_prop, put_u32_prop, scan_publish_props,
)
from broker.session import Message
from broker.v5 import State
from broker.output import reserve, write_publish

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Tuple, Union
    from broker.bridge import Bridge
    from broker.conn import Conn
    from broker.engine import Broker
    Buffer = Union[bytes, bytearray]

_CONNACK = const(2)
_PUBACK = const(4)
_PUBREC = const(5)
_SUBACK = const(9)
_PROTOCOL_LEVEL_5 = const(5)
_OPTION_NO_LOCAL = const(0x04)
_OPTION_RETAIN_AS_PUBLISHED = const(0x08)
_RC_UNSPECIFIED_ERROR = const(0x80)
_RC_TOPIC_ALIAS_INVALID = const(0x94)
_LOG_NOTICE = const(0x04)
_NO_PACKET_LIMIT = const(268435460)  # broker.settings: the protocol's own limit
_NEVER = 0xFFFFFFFF  # a Session Expiry Interval that does not run out (a heap int on a board)


class Remote(State):
    """A bridge's v5 connection: what the remote broker's CONNACK said of it (3.2.2.3), besides
    its Maximum Packet Size (State.max_packet)."""

    max_qos = 2
    retain = True  # Retain Available


def attach(b: "Broker") -> None:
    """A bridge set to mqttv50 loads the v5 code as the first v5 client would."""
    if b.v5 is None:
        b.v5 = v5


def opened(br: "Bridge", conn: "Conn") -> None:
    """A new connection: a v5 one, whose limits the CONNACK will tell."""
    conn.level = _PROTOCOL_LEVEL_5
    conn.v5 = Remote()
    br.session.window = 65536  # no Receive Maximum yet: 65535 (and the SUBSCRIBE's slot)


def connect_properties(br: "Bridge") -> bytes:
    """The CONNECT's properties (3.1.2.11)."""
    cfg = br.broker.config
    out = bytearray(15)
    pos = 0
    if not br.settings.cleansession:
        # cleansession false as 3.1.1 means it: the remote keeps the session while the link
        # is down [MQTT-3.1.2-23] (mosquitto 2.0's v5 bridge sends none, and loses it)
        pos = put_u32_prop(out, pos, SESSION_EXPIRY_INTERVAL, _NEVER)
    if cfg.max_inflight_messages < 65535:  # what mosquitto's bridge sends: its own window
        pos = put_u16_prop(out, pos, RECEIVE_MAXIMUM, cfg.max_inflight_messages)
    if cfg.max_packet_size < _NO_PACKET_LIMIT:
        # the remote drops a larger PUBLISH [MQTT-3.1.2-24] rather than sending it to end the
        # link
        pos = put_u32_prop(out, pos, MAXIMUM_PACKET_SIZE, cfg.max_packet_size)
    return bytes(out[:pos])


def connack(br: "Bridge", buf: "Buffer", pos: int, end: int) -> int:
    """The Reason Code of a CONNACK to the v5 CONNECT; when it accepts, its properties taken in:
    the remote's Receive Maximum [MQTT-3.3.4-7], Maximum Packet Size [MQTT-3.2.2-15], Maximum
    QoS [MQTT-3.2.2-11], Retain Available [MQTT-3.2.2-14], Server Keep Alive [MQTT-3.2.2-21].
    Two bytes are a 3.1.1 broker's answer (0x01: it does not know level 5)."""
    if end - pos < 2:
        raise MalformedPacket("CONNACK too short")
    reason = buf[pos + 1]
    if end - pos == 2:
        return reason
    p, e = decode_props(buf, pos + 2, end, _CONNACK)
    if e != end:
        raise MalformedPacket("unexpected bytes after CONNACK properties")
    if reason:
        if p.reason_string is not None:
            br.broker.log(_LOG_NOTICE, "Bridge %s: the remote broker says: %s"
                          % (br.name, p.reason_string))
        return reason
    st = br.conn.v5
    if p.maximum_packet_size is not None:
        st.max_packet = p.maximum_packet_size
    if p.maximum_qos is not None:
        st.max_qos = p.maximum_qos
    if p.retain_available == 0:
        st.retain = False
    if p.server_keep_alive is not None:
        br.keepalive_ms = p.server_keep_alive * 1000
    if p.receive_maximum is not None:
        br.session.window = p.receive_maximum + 1
    return 0


def options(br: "Bridge", qos: int) -> int:
    """A SUBSCRIBE's Subscription Options for a topic's QoS, as mosquitto's v5 bridge sets them:
    No Local, so that what the bridge publishes there does not come back [MQTT-3.8.3-3]; Retain
    As Published, so that retained messages stay retained here [MQTT-3.3.1-13]; Retain
    Handling 0 (3.8.3.1)."""
    mq = br.conn.v5.max_qos
    return (qos if qos < mq else mq) | _OPTION_NO_LOCAL | _OPTION_RETAIN_AS_PUBLISHED


def suback_codes(buf: "Buffer", pos: int, end: int) -> int:
    """Where the Reason Codes of a SUBACK whose properties start at buf[pos] begin."""
    return decode_props(buf, pos, end, _SUBACK)[1]


def acknowledged(br: "Bridge", t: int, buf: "Buffer", pos: int) -> None:
    """A PUBACK or PUBREC with a Reason Code: one of 0x80 or more ends that delivery
    [MQTT-4.3.3-4] (broker.handle_publish), and is logged here."""
    reason = buf[pos + 2]
    if reason >= _RC_UNSPECIFIED_ERROR and (t == _PUBACK or t == _PUBREC):
        br.broker.log(_LOG_NOTICE, "Bridge %s: the remote broker refused message %d (0x%02x)."
                      % (br.name, (buf[pos] << 8) | buf[pos + 1], reason))


def disconnected(buf: "Buffer", pos: int, end: int) -> str:
    """Why the remote broker sent DISCONNECT (3.14), for the log."""
    reason, p = decode_disconnect5(buf, pos, end)
    said = ": " + p.reason_string if p.reason_string is not None else ""
    return "the remote broker disconnected (0x%02x%s)" % (reason, said)


def refuse(b: "Broker", conn: "Conn", reason: int) -> None:
    """DISCONNECT with the Reason Code of what the remote broker got wrong, before the link
    closes [MQTT-4.13.1-1]."""
    pos = reserve(b, conn, disconnect5_size(reason, 0), False)
    if pos >= 0:
        put_disconnect5(conn.out, pos, reason, b"")


def publish_in(br: "Bridge", buf: "Buffer", end: int) -> "Tuple[bytes, int]":
    """The properties of the PUBLISH that the broker's view describes (parsed up to them),
    checked: what is forwarded of them, and when its Message Expiry Interval runs out
    (Broker.seconds; -1: never)."""
    b = br.broker
    v = b.pub
    ps = scan_publish_props(buf, v.payload_start, end, v)
    v.payload_start = ps
    if v.alias:  # the CONNECT allowed none [MQTT-3.1.2-27]
        raise v5.error(_RC_TOPIC_ALIAS_INVALID, "Topic Alias from the remote broker")
    fwd = bytes(buf[v.props_start:ps]) if v.fwd else forwarded(buf, v.props_start, ps)
    return fwd, -1 if v.expiry < 0 else b.seconds + v.expiry


def from_local(br: "Bridge", remote: bytes, msg: Message, qos: int, retain: bool) -> None:
    """A local message (msg, its topic now remote) for the remote broker, with its properties
    and what is left of its Message Expiry Interval; within the remote's Maximum QoS and
    Retain Available."""
    b = br.broker
    conn = br.session.conn  # (None while the link is not up)
    if conn is not None and conn.level == _PROTOCOL_LEVEL_5:
        st = conn.v5
        if qos > st.max_qos:
            qos = st.max_qos
        if not st.retain:
            retain = False
    n = len(remote)
    data = remote + bytes(msg.data[msg.tlen:])
    ps = n + msg.plen
    if qos or conn is None:
        m = Message(data, n, qos, retain)
        m.plen = msg.plen
        m.expires = msg.expires
        br._send(m)
    elif conn.level == _PROTOCOL_LEVEL_5:
        if not b.v5.publish_to(b, conn, _OPTION_RETAIN_AS_PUBLISHED, retain, msg.expires, data,
                               0, n, n, ps, len(data)):
            br._drop()  # past the remote's Maximum Packet Size, or the output cap
    elif not write_publish(b, conn, 0x31 if retain else 0x30, 0, data, 0, n, ps, len(data),
                           True):
        br._drop()  # (a 3.1.1 remote: the properties stay here)


def count_dropped(br: "Bridge") -> None:
    """Kept messages broker.v5 dropped for the link, larger than the remote's Maximum Packet
    Size [MQTT-3.2.2-15]: counted with the bridge's other drops, and logged."""
    conn = br.conn
    if conn is not None and conn.dropped:
        br.session.dropped += conn.dropped
        br.broker.log(_LOG_NOTICE, "Bridge %s: %d message(s) larger than the remote broker's"
                      " Maximum Packet Size dropped." % (br.name, conn.dropped))
        conn.dropped = 0
