"""PUBLISH from a client and the acknowledgements of deliveries: validation, the QoS 2 flow
on the receiving side [MQTT-4.3.3], what clients may not publish, the decision to keep a message
before it is acknowledged, retained messages [MQTT-3.3.1-5], and PUBACK / PUBREC / PUBREL /
PUBCOMP for the messages the broker sends [MQTT-4.3.2] [MQTT-4.3.3].

The routing itself (Broker.collect, Broker.deliver_hits) is the engine's; kept messages go out
through broker.delivery.
"""
from broker.bytesops import MPY, const, micropython
from broker.codec import MalformedPacket, parse_publish
from broker.delivery import pump
from broker.lifecycle import LIMIT_MEMORY, close, log_limited
from broker.retain import FULL as RETAINED_FULL, retained_share
from broker.session import (
    AWAIT_PUBACK, AWAIT_PUBCOMP, AWAIT_PUBREC, QOS2_FULL, QOS2_NEW, QOS2_RESENT, message_from,
)
from broker.topics import valid_topic_name
from broker.output import send_ack
if not MPY:
    # On CPython the MQTT 5 code comes with the core (a board loads it with its first MQTT 5
    # client, through Broker.v5): the compiled build then calls it without Python's calling
    # convention, each MQTT 5 PUBLISH.
    from broker.v5 import publish_in


_PUBACK = const(4)
_PUBREC = const(5)
_PUBREL = const(6)
_PUBCOMP = const(7)
_DOLLAR = const(0x24)  # '$'
_LOG_DEBUG = const(0x40)
_LOG_NOTICE = const(0x04)
_LOG_WARNING = const(0x02)
# (CPython) the longest topic name a connection remembers as valid: a longer one is checked
# again each time, which costs about what comparing it would, and no client can make every
# connection hold a copy of its longest topic.
_TOPIC_OK_MAX = const(256)
_PROTOCOL_LEVEL_5 = const(5)
_RC_SUCCESS = const(0x00)
_RC_NO_MATCHING_SUBSCRIBERS = const(0x10)
_RC_UNSPECIFIED_ERROR = const(0x80)
_RC_IMPLEMENTATION_SPECIFIC_ERROR = const(0x83)
_RC_NOT_AUTHORIZED = const(0x87)
_RC_PACKET_IDENTIFIER_NOT_FOUND = const(0x92)
_RC_QUOTA_EXCEEDED = const(0x97)
_RC_RETAIN_NOT_SUPPORTED = const(0x9A)
_RC_QOS_NOT_SUPPORTED = const(0x9B)
_RC_RECEIVE_MAXIMUM_EXCEEDED = const(0x93)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Union
    from broker.conn import Conn
    from broker.engine import Broker
    from broker.session import Message
    Buffer = Union[bytes, bytearray]


def _dollar_write_denied(buf: "Buffer", ts: int, te: int) -> bool:
    """Topics a client may not publish to, whatever the ACL says (mosquitto's rule): $SYS is
    the broker's own, but for the bridge state that a remote bridge reports into it
    ($SYS/broker/connection/NAME/state); $share names shared subscriptions, never a topic."""
    if buf.startswith(b"$SYS", ts):
        at = ts + 23  # len(b"$SYS/broker/connection/")
        if not buf.startswith(b"$SYS/broker/connection/", ts):
            return True
        slash = buf.find(b"/", at, te)
        return slash <= at or te - slash != 6 or not buf.startswith(b"/state", slash)
    return buf.startswith(b"$share", ts)


@micropython.native
def handle_publish(b: "Broker", conn: "Conn", b0: int, buf: "Buffer", pos: int, end: int) -> None:
    """PUBLISH from a client [MQTT-3.3]: checked, kept if it must be, acknowledged, routed."""
    v = b.pub
    parse_publish(v, b0, buf, pos, end)
    v5 = conn.level == _PROTOCOL_LEVEL_5
    if v5:
        # properties, Topic Alias
        inb = b.v5.publish_in(b, conn, buf, end) if MPY else publish_in(b, conn, buf, end)
        if inb is None:
            return
        buf = inb
    ts = v.topic_start
    te = v.topic_end
    qos = v.qos
    if te - ts > b.config.max_topic_length:
        raise MalformedPacket("topic longer than max_topic_length")
    last = conn.topic_ok
    if last is None or te - ts != len(last) or not buf.startswith(last, ts):
        if not valid_topic_name(buf, ts, te):
            raise MalformedPacket("invalid topic name")  # [MQTT-3.3.2-2] [MQTT-4.7.3-1]
        if not MPY and te - ts <= _TOPIC_OK_MAX:  # (a copy per new topic: not on a board)
            conn.topic_ok = bytes(buf[ts:te])
    if qos == 0 and b0 & 0x08:
        raise MalformedPacket("DUP set on a QoS 0 PUBLISH")  # [MQTT-3.3.1-2]
    if qos and v.mid == 0:
        raise MalformedPacket("packet identifier 0")  # [MQTT-2.3.1-1]
    if b0 & 0x01 and not b.config.retain_available:
        e = MalformedPacket("RETAIN set but retain_available is false")
        e.reason = _RC_RETAIN_NOT_SUPPORTED
        raise e
    if qos > b.config.max_qos:  # MQTT 5: a Protocol Error (3.2.2.3.4); mosquitto closes 3.1.1
        e = MalformedPacket("QoS %d above max_qos %d" % (qos, b.config.max_qos))
        e.reason = _RC_QOS_NOT_SUPPORTED
        raise e
    b.messages_received += 1
    if b.log_mask & _LOG_DEBUG:
        from broker.logs import trace
        trace(b, "Received PUBLISH from", conn, b0, v.mid, buf, ts, te,
              v.payload_end - v.payload_start)
    mid = v.mid
    ps = v.payload_start
    pps = v.props_start if v5 else ps
    pe = v.payload_end
    s = conn.session
    if qos == 2:
        got = s.qos2_received(mid) if s is not None else QOS2_NEW
        if got == QOS2_RESENT:
            send_ack(b, conn, _PUBREC, mid)  # a re-sent PUBLISH: deliver once only
            return
        if got == QOS2_FULL:
            # 3.1.1 cannot refuse a PUBLISH; a client that never releases its QoS 2
            # messages would hold the broker's memory, so it loses the connection (an MQTT 5
            # client went past the CONNACK's Receive Maximum [MQTT-3.3.4-7]).
            if v5:
                b.v5.refuse(b, conn, _RC_RECEIVE_MAXIMUM_EXCEEDED)
            close(b, conn, "Client %s has too many QoS 2 messages awaiting PUBREL, "
                  "disconnecting." % conn.client_id, True)
            return
    acl = b.acl
    if buf[ts] == _DOLLAR and _dollar_write_denied(buf, ts, te):
        # 3.1.1 has no way to refuse a PUBLISH: drop it, acknowledge it as usual.
        if b.log_mask & _LOG_DEBUG:
            b.log(_LOG_DEBUG, "Denied PUBLISH from %s to '%s' (the broker's own topics)."
                  % (conn.client_id, str(bytes(buf[ts:te]), "utf-8")))
        b.messages_dropped += 1
        reason = _RC_SUCCESS
    elif acl is not None and s is not None and s.acl is not None\
            and not acl.writable(s.acl, buf, ts, te):
        b.log(_LOG_NOTICE, "Denied PUBLISH from %s to '%s' (acl_file)."
              % (conn.client_id, str(bytes(buf[ts:te]), "utf-8")))
        b.messages_dropped += 1
        reason = _RC_NOT_AUTHORIZED  # (what MQTT 5 can say; 3.1.1 acknowledges as usual)
    elif b.hooks is not None and not b.hooks.may_publish(conn, buf, ts, te):
        b.messages_dropped += 1
        reason = _RC_NOT_AUTHORIZED
    elif pe - ps > b.config.message_size_limit > 0:
        # as mosquitto: not forwarded, the QoS exchange completed
        if b.log_mask & _LOG_DEBUG:
            b.log(_LOG_DEBUG, "Dropped too large PUBLISH from %s to '%s' (%d bytes)."
                  % (conn.client_id, str(bytes(buf[ts:te]), "utf-8"), pe - ps))
        b.messages_dropped += 1
        reason = _RC_IMPLEMENTATION_SPECIFIC_ERROR
    else:
        n = b.collect(buf, ts, te)
        msg = None
        if (b0 & 0x01 and pe > ps) or (v5 and v.expiry >= 0) or (
                (qos or b.config.queue_qos0_messages) and _must_keep(b, n, qos)):
            # What is acknowledged can be delivered: a message that cannot be kept is
            # refused before any acknowledgement, and 3.1.1's only refusal is to close
            # the connection, so that the client sends it again.
            msg = _keep(b, conn, buf, n)
            if msg is None:
                if qos == 2 and s is not None:
                    s.qos2_released(mid)
                return
            if v5 and v.expiry >= 0:
                msg.expires = b.seconds + v.expiry
        reason = _RC_SUCCESS if n else _RC_NO_MATCHING_SUBSCRIBERS
        if qos == 2:
            # acknowledged before it goes on, as mosquitto does: a client subscribed to
            # its own topic sees its PUBREC first
            acknowledge(b, conn, _PUBREC, mid, reason)
        if b0 & 0x01:
            _retain(b, conn, buf, ts, te, msg if pe > ps else None)
        b.sender = s
        # a PUBLISH with no flags goes out to QoS 0 subscribers byte for byte as it came
        b.deliver_hits(n, buf, ts, te, pps, ps, pe, qos, msg, b0 & 0x01 == 1,
                       pos - conn.reader.hlen if b0 == 0x30 and not v5 else -1)
        if qos == 1:
            acknowledge(b, conn, _PUBACK, mid, reason)
        return
    if qos:
        acknowledge(b, conn, _PUBACK if qos == 1 else _PUBREC, mid, reason)
        if qos == 2 and reason >= _RC_UNSPECIFIED_ERROR and s is not None:
            s.qos2_released(mid)  # a PUBREC of 0x80 or more ends the exchange: no PUBREL


@micropython.native
def acknowledge(b: "Broker", conn: "Conn", t: int, mid: int, reason: int) -> None:
    """PUBACK or PUBREC (packet type t) of mid, with MQTT 5's reason code where it has one."""
    if reason and conn.level == _PROTOCOL_LEVEL_5:
        b.v5.send_ack(b, conn, t, mid, reason)
    else:
        send_ack(b, conn, t, mid)


def _must_keep(b: "Broker", n: int, qos: int) -> bool:
    """Whether routing to hits[0:n] needs a kept copy of the message: a subscriber gets it
    at QoS 1 or 2, or it is queued for an offline session (queue_qos0_messages)."""
    hits = b.hits
    queue0 = b.config.queue_qos0_messages
    for i in range(n):
        s = hits[i]
        if s.local is None and ((qos and s.route_qos) or (queue0 and s.conn is None)):
            return True
    return False


@micropython.native
def _keep(b: "Broker", conn: "Conn", buf: "Buffer", n: int) -> "Optional[Message]":
    """The kept copy of the PUBLISH in buf that b.pub describes, routed to hits[0:n];
    None when there is no room for it, after closing the publisher's connection (with its
    will) and clearing hits. (Few arguments: MicroPython puts a larger frame on the heap.)"""
    v = b.pub
    ts = v.topic_start
    te = v.topic_end
    ps = v.payload_start
    pps = v.props_start if conn.level == _PROTOCOL_LEVEL_5 else ps
    why = b.room_for(te - ts + v.payload_end - pps)
    if not why:
        try:
            return message_from(buf, ts, te, pps, ps, v.payload_end, v.qos,
                                v.b0 & 0x01 == 1)
        except MemoryError:
            why = "the heap has no block that large"
    hits = b.hits
    for i in range(n):
        hits[i] = None
    size = te - ts + v.payload_end - v.payload_start
    topic = str(bytes(buf[ts:te]), "utf-8")
    if v.qos and conn.level == _PROTOCOL_LEVEL_5:
        # MQTT 5 can refuse it: Quota exceeded, and the client decides what to do
        log_limited(b, LIMIT_MEMORY, _LOG_WARNING, "Client %s: no room to keep a message of %d"
                    " bytes on '%s' (%s), refused." % (conn.client_id, size, topic, why))
        acknowledge(b, conn, _PUBACK if v.qos == 1 else _PUBREC, v.mid, _RC_QUOTA_EXCEEDED)
        return None
    log_limited(b, LIMIT_MEMORY, _LOG_WARNING, "Client %s: no room to keep a message of %d"
                " bytes on '%s' (%s), disconnecting: it is sent again on reconnection."
                % (conn.client_id, size, topic, why))
    if conn.level == _PROTOCOL_LEVEL_5:
        b.v5.refuse(b, conn, _RC_QUOTA_EXCEEDED)
    close(b, conn, "", True)
    return None


def _retain(b: "Broker", conn: "Conn", buf: "Buffer", ts: int, te: int,
            msg: "Optional[Message]") -> None:
    """A PUBLISH with RETAIN set: keep msg as its topic's retained message, or clear it
    (msg None: an empty payload) [MQTT-3.3.1-5] [MQTT-3.3.1-10] [MQTT-3.3.1-11]."""
    if msg is None:
        b.retained.delete(buf, ts, te)
        return
    share = retained_share(b.config)
    why = b.retained.store(msg, conn.client_id, share)
    if why:
        if why == RETAINED_FULL:
            limit = "max_retained_messages (%d)" % b.config.max_retained_messages
        else:
            limit = "max_retained_per_client (%d)" % share
        b.log(_LOG_WARNING, "Retained message on '%s' not kept: %s reached."
              % (str(bytes(buf[ts:te]), "utf-8"), limit))


@micropython.native
def handle_acknowledgement(b: "Broker", conn: "Conn", t: int, buf: "Buffer", pos: int,
                           end: int) -> None:
    """PUBACK, PUBREC, PUBREL or PUBCOMP (packet type t) in buf[pos:end]: from a client, or
    from the remote broker a bridge sent to."""
    reason = 0
    if end - pos != 2:
        if end - pos < 2 or conn.level != _PROTOCOL_LEVEL_5:
            from broker.logs import packet_name  # for the error only
            raise MalformedPacket("%s remaining length must be 2" % packet_name(t))
        reason = b.v5.acknowledgement(buf, pos, end)  # a Reason Code [MQTT-3.4.2-1]
    mid = (buf[pos] << 8) | buf[pos + 1]
    if t == _PUBACK:
        handle_ack(b, conn, t, mid, AWAIT_PUBACK)
    elif t == _PUBREC:
        if reason < _RC_UNSPECIFIED_ERROR:
            handle_pubrec(b, conn, mid)
        else:  # refused: the exchange ends there, no PUBREL [MQTT-4.3.3-4]
            handle_ack(b, conn, t, mid, AWAIT_PUBREC)
    elif t == _PUBREL:
        handle_pubrel(b, conn, mid)
    else:
        handle_ack(b, conn, t, mid, AWAIT_PUBCOMP)


@micropython.native
def handle_ack(b: "Broker", conn: "Conn", t: int, mid: int, state: int) -> None:
    """PUBACK (QoS 1) or PUBCOMP (QoS 2) ends a delivery: its slot and packet identifier
    are free again, and a queued message can take them."""
    s = conn.session
    if s is None:
        return
    i = s.find_slot(mid, state)
    if i >= 0:
        s.release_slot(i)
        if s.queue:
            pump(b, s)
    elif b.log_mask & _LOG_DEBUG:
        from broker.logs import packet_name
        b.log(_LOG_DEBUG, "Received %s from %s for unknown packet id %d"
              % (packet_name(t), conn.client_id, mid))


def handle_pubrec(b: "Broker", conn: "Conn", mid: int) -> None:
    """PUBREC for a QoS 2 message the broker sent: PUBREL [MQTT-4.3.3-1]."""
    s = conn.session
    if s is None:
        return
    i = s.find_slot(mid, AWAIT_PUBREC)
    if i >= 0:
        s.slot_state[i] = AWAIT_PUBCOMP
        s.forget_message(i)  # the message is delivered; only its identifier is kept
        send_ack(b, conn, _PUBREL, mid)
    elif s.find_slot(mid, AWAIT_PUBCOMP) >= 0:
        send_ack(b, conn, _PUBREL, mid)


def handle_pubrel(b: "Broker", conn: "Conn", mid: int) -> None:
    """PUBREL for a QoS 2 message a client sent: PUBCOMP [MQTT-4.3.3-2], which tells an
    MQTT 5 client when the identifier was not awaiting release."""
    s = conn.session
    if (s is None or not s.qos2_released(mid)) and conn.level == _PROTOCOL_LEVEL_5:
        b.v5.send_ack(b, conn, _PUBCOMP, mid, _RC_PACKET_IDENTIFIER_NOT_FOUND)
        return
    send_ack(b, conn, _PUBCOMP, mid)
