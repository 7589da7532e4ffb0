"""MQTT 5.0: what an MQTT 5 client adds to the handlers of 3.1.1. Loaded by the first MQTT 5
CONNECT (Broker.v5), so that a broker whose clients all speak 3.1.1 never holds it, nor the
property codec (broker.props) and the v5 packets (broker.codec5) it imports.

A v5 connection keeps its own state in conn.v5 (State). Reason Codes: broker.const RC_*.
"""
from broker.bytesops import MPY, const, copy_into, micropython, utf8_valid
from broker.codec5 import (
    ack5_size, connack5_size, decode_ack5, decode_disconnect5, decode_subscribe5,
    decode_unsubscribe5, disconnect5_size, publish5_props_len, publish5_size, put_ack5,
    put_connack5, put_disconnect5, put_publish5, put_suback5, put_unsuback5, suback5_size,
    unsuback5_size,
)
from broker.delivery import sent
from broker.lifecycle import close, publish_will, set_will
from broker.output import reserve
from broker.props import (
    ASSIGNED_CLIENT_IDENTIFIER, MAXIMUM_PACKET_SIZE, MAXIMUM_QOS, MESSAGE_EXPIRY_INTERVAL,
    REASON_STRING, RECEIVE_MAXIMUM, RETAIN_AVAILABLE, SERVER_KEEP_ALIVE, SUBSCRIPTION_IDENTIFIER,
    TOPIC_ALIAS_MAXIMUM, ProtocolError, forwarded, put_str_prop, put_u16_prop, put_u32_prop,
    put_u8_prop, put_varint, put_varint_prop, scan_publish_props, varint_size,
)
from broker.session import Message

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple, Union
    from broker.codec import Connect
    from broker.conn import Conn
    from broker.engine import Broker
    from broker.session import Session
    Buffer = Union[bytes, bytearray]

_PUBACK = const(4)
_PUBREC = const(5)
_PUBCOMP = const(7)
_FLAG_QOS_MASK = const(0x03)
_FLAG_RETAIN = const(0x04)
_FLAG_SEVERAL_IDS = const(0x08)
_FLAG_ID_SHIFT = const(4)
_OPTION_RETAIN_AS_PUBLISHED = const(0x08)
_OPTION_SEVERAL_IDS = const(0x10)  # options below it carry no Subscription Identifier
_OPTION_ID_SHIFT = const(5)
_NEW = const(0)
_RC_SUCCESS = const(0x00)
_RC_DISCONNECT_WITH_WILL = const(0x04)
_RC_BAD_AUTHENTICATION_METHOD = const(0x8C)
_RC_TOPIC_ALIAS_INVALID = const(0x94)
_RC_PAYLOAD_FORMAT_INVALID = const(0x99)
_NO_PACKET_LIMIT = const(268435460)  # broker.settings: the protocol's own limit
_NEVER = const(0xFFFFFFFF)  # a Session Expiry Interval that does not run out
_LOG_DEBUG = const(0x40)
_LOG_NOTICE = const(0x04)

# The Reason Code of a refusal the 3.1.1 handler names by its CONNACK return code (1-5).
_CONNACK_REASON = b"\x00\x84\x85\x88\x86\x87"


class State:
    """What an MQTT 5 connection adds to a Conn. Defaults on the class: an instance stores only
    what its CONNECT set."""

    will_delay = 0         # its will's Will Delay Interval
    will_expiry = -1       # its will's Message Expiry Interval, -1: none
    max_packet = 0         # the client's Maximum Packet Size; 0: the protocol's limit
    aliases = None         # type: Optional[Dict[int, bytes]]  # its Topic Aliases
    assigned = ""          # an Assigned Client Identifier to send in the CONNACK
    keep_alive = -1        # a Server Keep Alive to send, -1: none
    expiry = 0             # the CONNECT's Session Expiry Interval
    # (CPython) the Property Length and properties of the last PUBLISH, when they were valid
    # and set nothing the broker acts on: a client sends the same ones again and again
    props_ok = None        # type: Optional[bytes]


def error(reason: int, why: str) -> ProtocolError:
    """A ProtocolError that the client is told with its own Reason Code."""
    e = ProtocolError(why)
    e.reason = reason
    return e


def refuse(b: "Broker", conn: "Conn", reason: int, why: str = "") -> None:
    """Tell conn why the broker closes it, before it does: CONNACK before CONNECT was
    accepted, else DISCONNECT [MQTT-4.13.1-1], with `why` as its Reason String when it fits
    the client's Maximum Packet Size [MQTT-3.14.2-3]."""
    if conn.state == _NEW:
        send_connack(b, conn, False, reason)
        return
    props = b""
    if why:
        text = why.encode()
        out = bytearray(3 + len(text))
        put_str_prop(out, 0, REASON_STRING, text)
        props = bytes(out)
        mp = conn.v5.max_packet
        if mp and disconnect5_size(reason, len(props)) > mp:
            props = b""
    pos = reserve(b, conn, disconnect5_size(reason, len(props)), False)
    if pos >= 0:
        put_disconnect5(conn.out, pos, reason, props)
    if b.log_mask & _LOG_DEBUG:
        b.log(_LOG_DEBUG, "Sending DISCONNECT to %s (0x%02x)" % (conn.client_id, reason))


def connect(b: "Broker", conn: "Conn", c: "Connect") -> int:
    """Take in what a CONNECT's properties ask for; a Reason Code to refuse it with, or 0."""
    p = c.props
    assert p is not None
    if p.authentication_method is not None:
        return _RC_BAD_AUTHENTICATION_METHOD  # no enhanced authentication here [MQTT-4.12.0-1]
    st = conn.v5
    if p.maximum_packet_size is not None:
        st.max_packet = p.maximum_packet_size
    if p.session_expiry_interval is not None:
        st.expiry = p.session_expiry_interval
    wp = c.will_props
    if wp is not None:
        if wp.will_delay_interval is not None:
            st.will_delay = wp.will_delay_interval
        if wp.message_expiry_interval is not None:
            st.will_expiry = wp.message_expiry_interval
    return 0


def start_session(s: "Session", conn: "Conn", c: "Connect") -> None:
    """The CONNECT's Session Expiry Interval [MQTT-3.1.2-11] and Receive Maximum
    [MQTT-3.3.4-9] on the session it starts or continues."""
    expiry = conn.v5.expiry
    s.clean = expiry == 0
    s.expiry = -1 if expiry == _NEVER else expiry
    assert c.props is not None
    rm = c.props.receive_maximum
    s.window = rm if rm is not None else 65535


def will(c: "Connect") -> Message:
    """The CONNECT's will, with what is forwarded of its properties."""
    wt = c.will_topic
    assert wt is not None
    m = Message(wt + c.will_fwd + c.will_payload, len(wt), c.will_qos, c.will_retain)
    m.plen = len(c.will_fwd)
    return m


def will_gone(b: "Broker", conn: "Conn", s: "Optional[Session]", m: Message) -> None:
    """conn ended without a DISCONNECT that discards its will m: publish it, or, with a Will
    Delay Interval and a session that lives on, keep it in the session until the delay has
    passed or the session ends, whichever comes first [MQTT-3.1.3-9]."""
    st = conn.v5
    if st.will_delay and s is not None and b.sessions.get(s.client_id) is s:
        b.ledger.hold(m)
        s.will = m
        s.will_at = b.seconds + st.will_delay
        s.will_expiry = st.will_expiry
        return
    if st.will_expiry >= 0:
        m.expires = b.seconds + st.will_expiry
    publish_will(b, m, conn.client_id)


def publish_delayed_will(b: "Broker", s: "Session") -> None:
    m = s.will
    assert m is not None
    s.will = None
    if b.ledger.changes is not None:  # persistence on: the will is not saved with it again
        b.ledger.changes.session(s)
    if s.will_expiry >= 0:
        m.expires = b.seconds + s.will_expiry  # counted from its publication [MQTT-3.3.2-5]
    publish_will(b, m, s.client_id)
    b.ledger.release(m)


def due_wills(b: "Broker") -> None:
    """Publish the delayed wills whose Will Delay Interval has passed (every second)."""
    now = b.seconds
    due = [s for s in b.sessions.values() if s.will is not None and now >= s.will_at]
    for s in due:
        publish_delayed_will(b, s)


def send_connack(b: "Broker", conn: "Conn", present: bool, code: int) -> None:
    """CONNACK with the Reason Code of code (a 3.1.1 return code, or a Reason Code), and for an
    accepted client the properties that tell it the broker's limits [MQTT-3.2.2]."""
    reason = _CONNACK_REASON[code] if code < len(_CONNACK_REASON) else code
    props = _connack_properties(b, conn) if reason == _RC_SUCCESS else b""
    pos = reserve(b, conn, connack5_size(len(props)), False)
    if pos >= 0:
        put_connack5(conn.out, pos, present, reason, props)
    if b.log_mask & _LOG_DEBUG:
        b.log(_LOG_DEBUG, "Sending CONNACK to %s (%d, 0x%02x)"
              % (conn.client_id or conn.peer, 1 if present else 0, reason))


def _connack_properties(b: "Broker", conn: "Conn") -> bytes:
    cfg = b.config
    st = conn.v5
    s = conn.session
    out = bytearray(64 + len(st.assigned))
    pos = 0
    # how many QoS 2 messages the client may have unreleased at once (QoS 1 ones are
    # acknowledged as they come): Session.qos2_received's bound
    rm = s.size + s.max_queued if s is not None else cfg.max_inflight_messages
    if rm < 65535:
        pos = put_u16_prop(out, pos, RECEIVE_MAXIMUM, rm)
    if cfg.max_qos < 2:
        pos = put_u8_prop(out, pos, MAXIMUM_QOS, cfg.max_qos)
    if not cfg.retain_available:
        pos = put_u8_prop(out, pos, RETAIN_AVAILABLE, 0)
    if cfg.max_packet_size < _NO_PACKET_LIMIT:
        pos = put_u32_prop(out, pos, MAXIMUM_PACKET_SIZE, cfg.max_packet_size)
    if st.assigned:
        pos = put_str_prop(out, pos, ASSIGNED_CLIENT_IDENTIFIER, st.assigned.encode())
    if cfg.max_topic_alias:
        pos = put_u16_prop(out, pos, TOPIC_ALIAS_MAXIMUM, cfg.max_topic_alias)
    if st.keep_alive >= 0:
        pos = put_u16_prop(out, pos, SERVER_KEEP_ALIVE, st.keep_alive)
    return bytes(out[:pos])


def publish_in(b: "Broker", conn: "Conn", buf: "Buffer", end: int) -> "Optional[Buffer]":
    """The properties of the PUBLISH that b.pub describes (parsed up to them): its Topic Alias
    resolved [MQTT-3.3.2-12], its payload checked against its Payload Format Indicator, what is
    forwarded of its properties placed before the payload. Returns the buffer the view now
    points into (buf, or a new one holding topic, properties and payload), or None when the
    PUBLISH was refused (and acknowledged with its reason)."""
    v = b.pub
    p = v.payload_start
    st = conn.v5  # type: State
    last = st.props_ok
    if last is not None and p + len(last) <= end and buf.startswith(last, p):
        # the Property Length and properties checked last time: nothing the broker acts on
        v.props_start = p + 1
        v.alias = 0
        v.expiry = -1
        v.pfi = 0
        v.fwd = True
        ps = p + len(last)
    else:
        ps = scan_publish_props(buf, p, end, v)
        if not MPY and v.fwd and not v.pfi and v.props_start == p + 1:
            # (a copy of up to 128 bytes per new set: not on a board)
            st.props_ok = bytes(buf[p:ps])
    v.payload_start = ps
    ts = v.topic_start
    te = v.topic_end
    topic = None  # type: Optional[bytes]
    alias = v.alias
    if alias:
        if alias > b.config.max_topic_alias:
            raise error(_RC_TOPIC_ALIAS_INVALID, "Topic Alias %d above the Topic Alias Maximum"
                        " %d" % (alias, b.config.max_topic_alias))  # [MQTT-3.3.2-9]
        if st.aliases is None:
            st.aliases = {}
        if te == ts:
            topic = st.aliases.get(alias)
            if topic is None:
                raise ProtocolError("Topic Alias %d was never set" % alias)
        else:
            st.aliases[alias] = bytes(buf[ts:te])
    elif te == ts:
        raise ProtocolError("empty Topic Name without a Topic Alias")  # [MQTT-3.3.2-1]
    if v.pfi and not utf8_valid(buf, ps, end):
        b.messages_dropped += 1
        b.log(_LOG_NOTICE, "Client %s sent a payload that is not the UTF-8 its Payload Format"
              " Indicator says, dropped." % conn.client_id)
        if v.qos:
            send_ack(b, conn, _PUBACK if v.qos == 1 else _PUBREC, v.mid,
                     _RC_PAYLOAD_FORMAT_INVALID)
        return None
    if topic is None and v.fwd:
        # goes to v5 subscribers as it came (Broker.deliver_hits) when it has no flags and its
        # Remaining Length and Property Length take the fewest bytes (as put_publish5 writes them)
        hlen = conn.reader.hlen
        if v.b0 == 0x30 and v.props_start == te + 1 and hlen == 1 + varint_size(end - ts + 2):
            v.start = ts - 2 - hlen
        else:
            v.start = -1
        return buf
    v.start = -1
    if topic is None:
        topic = bytes(buf[ts:te])
    fwd = forwarded(buf, v.props_start, ps)
    tlen = len(topic)
    data = bytearray(tlen + len(fwd) + end - ps)
    data[0:tlen] = topic
    data[tlen:tlen + len(fwd)] = fwd
    data[tlen + len(fwd):] = buf[ps:end]
    v.topic_start = 0
    v.topic_end = tlen
    v.props_start = tlen
    v.payload_start = tlen + len(fwd)
    v.payload_end = len(data)
    return data


def flags(o: int, q: int, retain: bool) -> int:
    """A delivery's flags at QoS q for a subscription's options o: RETAIN as published when o
    asks for it [MQTT-3.3.1-12], and its Subscription Identifier, or that it has several."""
    f = q | ((o >> _OPTION_ID_SHIFT) << _FLAG_ID_SHIFT)
    if retain and o & _OPTION_RETAIN_AS_PUBLISHED:
        f |= _FLAG_RETAIN
    if o & _OPTION_SEVERAL_IDS:
        f |= _FLAG_SEVERAL_IDS
    return f


def identifiers(b: "Broker", s: "Session", buf: "Buffer", ts: int, te: int) -> bytes:
    """The Subscription Identifier properties of the subscriptions of s that match topic
    buf[ts:te], each identifier once, in order: a single copy for several subscriptions carries
    all their identifiers [MQTT-3.3.4-3] [MQTT-3.3.4-4]. (Gathered when the PUBLISH is sent:
    merge_options keeps one identifier, and says when there were several.)"""
    from broker.topics import filter_matches_in_place
    ids = []
    for filt, o in b.subs.filters_of(s):
        sid = o >> _OPTION_ID_SHIFT
        if sid and sid not in ids:
            k = 0
            if filt.startswith(b"$share/"):
                from broker.shared import filter_start
                k = filter_start(filt)
            if filter_matches_in_place(filt[k:], buf, ts, te):
                ids.append(sid)
    ids.sort()
    size = 0
    for sid in ids:
        size += 1 + varint_size(sid)
    out = bytearray(size)
    pos = 0
    for sid in ids:
        pos = put_varint_prop(out, pos, SUBSCRIPTION_IDENTIFIER, sid)
    return bytes(out)


def _insert(buf: "Buffer", ts: int, te: int, pps: int, pe: int, ids: bytes) -> bytearray:
    """Topic buf[ts:te], then ids, then properties and payload buf[pps:pe], in one buffer."""
    tlen = te - ts
    data = bytearray(tlen + len(ids) + pe - pps)
    copy_into(data, 0, buf, ts, tlen)
    copy_into(data, tlen, ids, 0, len(ids))
    copy_into(data, tlen + len(ids), buf, pps, pe - pps)
    return data


@micropython.native
def publish_to(b: "Broker", conn: "Conn", o: int, retain: bool, expires: int, buf: "Buffer",
               ts: int, te: int, pps: int, ps: int, pe: int) -> int:
    """A QoS 0 copy to an MQTT 5 client whose subscriptions' options are o: topic buf[ts:te],
    properties buf[pps:ps], payload buf[ps:pe]; the bytes written at the end of its output, 0
    when it is dropped."""
    left = -1 if expires < 0 else expires - b.seconds
    sid = o >> _OPTION_ID_SHIFT
    if o & _OPTION_SEVERAL_IDS:  # before the properties it forwards
        s = conn.session
        assert s is not None
        ids = identifiers(b, s, buf, ts, te)
        buf = _insert(buf, ts, te, pps, pe, ids)
        tlen = te - ts
        ps = len(buf) - (pe - ps)
        pe = len(buf)
        ts = 0
        te = tlen
        pps = tlen
        sid = 0
    b0 = 0x31 if retain and o & _OPTION_RETAIN_AS_PUBLISHED else 0x30
    size = publish5_size(b0, te - ts, publish5_props_len(ps - pps, sid, left), pe - ps)
    st = conn.v5  # type: State
    mp = st.max_packet
    if mp and size > mp:
        return 0  # [MQTT-3.1.2-25]
    pos = reserve(b, conn, size, True)
    if pos < 0:
        return 0
    put_publish5(conn.out, pos, b0, 0, buf, ts, te, pps, ps, pe, sid, left)
    b.messages_sent += 1
    if b.log_mask & _LOG_DEBUG:
        from broker.logs import trace
        trace(b, "Sending PUBLISH to", conn, b0, 0, buf, ts, te, pe - ps)
    return size


def send_stored(b: "Broker", s: "Session", b0: int, msg: "Message", f: int, mid: int) -> bool:
    """broker.delivery's _send for an MQTT 5 client: a kept message with its properties, its
    Subscription Identifiers and what is left of its Message Expiry Interval [MQTT-3.3.2-6].
    mid: an in-flight message sent again, whose flags its slot holds."""
    conn = s.conn
    left = -1
    if msg.expires >= 0:
        left = msg.expires - b.seconds
        if left <= 0:
            if not mid:  # never sent: it expired waiting [MQTT-3.3.2-5]
                b.messages_dropped += 1
                return True
            left = 0
    data = msg.data
    tlen = msg.tlen
    plen = msg.plen
    sf = s.slot_flags[(mid - 1) % s.size] if mid else f
    sid = sf >> _FLAG_ID_SHIFT
    ids = b""
    if sf & _FLAG_SEVERAL_IDS:
        ids = identifiers(b, s, data, 0, tlen)
        sid = 0
    props_len = publish5_props_len(plen + len(ids), sid, left)
    size = publish5_size(b0, tlen, props_len, len(data) - tlen - plen)
    mp = conn.v5.max_packet
    if mp and size > mp:
        # discarded as if it had been sent [MQTT-3.1.2-25]
        conn.dropped += 1
        b.messages_dropped += 1
        return True
    pos = reserve(b, conn, size, True) if size <= b.copy_max else -1
    if pos < 0 and conn.spool is not None:
        return False
    if f & _FLAG_QOS_MASK:
        i = s.take_slot(msg, f)  # (before slot_mid is read: it may allocate the slots)
        mid = s.slot_mid[i]
    if pos >= 0 and ids:
        d = _insert(data, 0, tlen, tlen, len(data), ids)
        put_publish5(conn.out, pos, b0, mid, d, 0, tlen, tlen, tlen + len(ids) + plen, len(d),
                     0, left)
    elif pos >= 0:
        put_publish5(conn.out, pos, b0, mid, data, 0, tlen, tlen, tlen + plen, len(data), sid,
                     left)
    else:
        from broker.spool import spool  # the first time a message does not fit
        spool(b, conn, b0, mid, msg, 0, _added_properties(props_len, plen, sid, left, ids))
    sent(b, conn, b0, mid, data, tlen, len(data) - tlen - plen)
    return True


def _added_properties(props_len: int, plen: int, sid: int, left: int, ids: bytes) -> bytes:
    """The Property Length and the properties the broker puts before a message's own (ids:
    several Subscription Identifiers, see identifiers)."""
    out = bytearray(varint_size(props_len) + props_len - plen)
    pos = put_varint(out, 0, props_len)
    if sid:
        pos = put_varint_prop(out, pos, SUBSCRIPTION_IDENTIFIER, sid)
    if left >= 0:
        pos = put_u32_prop(out, pos, MESSAGE_EXPIRY_INTERVAL, left)
    copy_into(out, pos, ids, 0, len(ids))
    return bytes(out)


def send_ack(b: "Broker", conn: "Conn", t: int, mid: int, reason: int) -> None:
    """PUBACK, PUBREC, PUBREL or PUBCOMP (type t) with a Reason Code [MQTT-3.4.2-1]."""
    pos = reserve(b, conn, ack5_size(reason, 0), False)
    if pos >= 0:
        put_ack5(conn.out, pos, (t << 4) | (2 if t == 6 else 0), mid, reason, b"")
    if b.log_mask & _LOG_DEBUG:
        b.log(_LOG_DEBUG, "Sending ack %d to %s (m%d, 0x%02x)" % (t, conn.client_id, mid, reason))


def acknowledgement(buf: "Buffer", pos: int, end: int) -> int:
    """The Reason Code of a PUBACK, PUBREC, PUBREL or PUBCOMP longer than 3.1.1's."""
    return decode_ack5(buf, pos, end)[1]


def subscribe_in(buf: "Buffer", pos: int, end: int) -> "Tuple[int, List[Tuple[bytes, int]], int]":
    """A SUBSCRIBE: its packet identifier, its filters with their options bytes, and its
    Subscription Identifier (0: none)."""
    mid, p, topics = decode_subscribe5(buf, pos, end)
    sid = p.subscription_identifier
    return mid, topics, 0 if sid is None else sid


def unsubscribe_in(buf: "Buffer", pos: int, end: int) -> "Tuple[int, List[bytes]]":
    mid, _, filters = decode_unsubscribe5(buf, pos, end)
    return mid, filters


def send_suback(b: "Broker", conn: "Conn", mid: int, codes: "List[int]") -> None:
    """SUBACK: a Reason Code per filter, in the SUBSCRIBE's order [MQTT-3.9.3-1]."""
    pos = reserve(b, conn, suback5_size(len(codes), 0), False)
    if pos >= 0:
        put_suback5(conn.out, pos, mid, codes, b"")


def send_unsuback(b: "Broker", conn: "Conn", mid: int, codes: "List[int]") -> None:
    """UNSUBACK: a Reason Code per filter [MQTT-3.11.3-1]."""
    pos = reserve(b, conn, unsuback5_size(len(codes), 0), False)
    if pos >= 0:
        put_unsuback5(conn.out, pos, mid, codes, b"")


def handle_disconnect(b: "Broker", conn: "Conn", buf: "Buffer", pos: int, end: int) -> None:
    """DISCONNECT from an MQTT 5 client: its Reason Code decides the will [MQTT-3.14.4-3], its
    Session Expiry Interval replaces the CONNECT's, which may not be 0 then [MQTT-3.14.2-2]."""
    reason, p = decode_disconnect5(buf, pos, end)
    expiry = p.session_expiry_interval
    s = conn.session
    if expiry is not None:
        if conn.v5.expiry == 0 and expiry != 0:
            raise ProtocolError("Session Expiry Interval set by DISCONNECT after 0 in CONNECT")
        if s is not None:
            s.clean = expiry == 0
            s.expiry = -1 if expiry == _NEVER else expiry
    if reason != _RC_DISCONNECT_WITH_WILL:
        set_will(b, conn, None)
    close(b, conn, "Client %s disconnected (0x%02x)." % (conn.client_id, reason),
          reason == _RC_DISCONNECT_WITH_WILL)

