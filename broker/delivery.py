"""Kept messages on their way to a session: the in-flight window [MQTT-4.3.2] [MQTT-4.3.3],
the queue behind it, sending again after a reconnection [MQTT-4.4.0-1], and the output they go
through: copied into a connection's output buffer when it has room, otherwise sent from the
message's own buffer (spooled, Conn.chunk), so that delivering never needs a second copy.
"""
from broker.codec import publish_size, put_publish
from broker.session import AWAIT_PUBCOMP, FLAG_QOS_MASK, FLAG_RETAIN

from broker.bytesops import const, micropython
from broker.output import reserve, send_ack

_PUBREL = const(6)
_LOG_DEBUG = const(0x40)
_LOG_WARNING = const(0x02)
_PROTOCOL_LEVEL_5 = const(5)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Union
    from broker.conn import Conn
    from broker.engine import Broker
    from broker.session import Message, Session
    Buffer = Union[bytes, bytearray]


@micropython.native
def deliver(b: "Broker", s: "Session", msg: "Message", flags: int) -> None:
    """A kept message (QoS 1 or 2, or a queued QoS 0 one) for session s: send now if the
    in-flight window has room and nothing waits ahead of it, else queue it (order is kept).
    An in-process client gets it at once: it has no wire to lose it on."""
    if s.local is not None:
        b.local_pending.append((s, msg.topic(), msg if s.local.whole else msg.payload(),
                                flags & FLAG_QOS_MASK, bool(flags & FLAG_RETAIN)))
        if not b.routing:
            b.run_local()
        return
    if s.conn is not None and not s.queue and not s.resend\
            and send_stored(b, s, msg, flags):
        return
    enqueue(b, s, msg, flags)


def enqueue(b: "Broker", s: "Session", msg: "Message", flags: int) -> None:
    """Queue msg for s, or drop it for s (counted, logged) past its queue's limits."""
    if not s.enqueue(msg, flags):
        if len(s.queue) >= s.max_queued:
            why = "max_queued_messages %d reached" % s.max_queued
        else:
            why = "max_queued_bytes %d reached" % s.ledger.queue_limit
        _dropped(b, s, why)


def _dropped(b: "Broker", s: "Session", why: str) -> None:
    """s.dropped already counts the message; log the first and every thousandth."""
    b.messages_dropped += 1
    if s.dropped == 1 or s.dropped % 1000 == 0:
        b.log(_LOG_WARNING, "Outgoing messages are being dropped for client %s "
              "(%s, %d dropped)." % (s.client_id, why, s.dropped))


@micropython.native
def send_stored(b: "Broker", s: "Session", msg: "Message", flags: int) -> bool:
    """Send kept msg to the connected session s now, if its window and output allow."""
    q = flags & FLAG_QOS_MASK
    if q and not s.window_open():
        return False
    return _send(b, s, 0x30 | (q << 1) | (1 if flags & FLAG_RETAIN else 0), msg, flags, 0)


def resend(b: "Broker", s: "Session", i: int) -> bool:
    """Send in-flight slot i again after a reconnection: PUBLISH with DUP set, or the
    PUBREL of a QoS 2 message already received [MQTT-4.4.0-1]; False: not now."""
    mid = s.slot_mid[i]
    if s.slot_state[i] == AWAIT_PUBCOMP:
        send_ack(b, s.conn, _PUBREL, mid)
        return True
    msg = s.slot_msg[i]
    if msg is None:
        return True
    flags = s.slot_flags[i]
    b0 = 0x38 | ((flags & FLAG_QOS_MASK) << 1) | (1 if flags & FLAG_RETAIN else 0)
    return _send(b, s, b0, msg, 0, mid)


@micropython.native
def _send(b: "Broker", s: "Session", b0: int, msg: "Message", flags: int, mid: int) -> bool:
    """Send kept msg to s as a PUBLISH with first byte b0: copied into its output when that
    fits under out_soft and the heap, else from its own buffer (broker.spool), one message at
    a time; False: not now (the port calls drained() once the output is out). QoS 1 or 2 in
    `flags` takes an in-flight slot and its packet identifier, else `mid` is used."""
    conn = s.conn
    if conn.level == _PROTOCOL_LEVEL_5:
        return b.v5.send_stored(b, s, b0, msg, flags, mid)
    data = msg.data
    tlen = msg.tlen
    ps = tlen + msg.plen  # (an MQTT 5 publisher's properties are not for a 3.1.1 client)
    size = publish_size(b0, tlen, len(data) - ps)
    pos = reserve(b, conn, size, True) if size <= b.copy_max else -1
    if pos < 0 and conn.spool is not None:
        return False
    if flags & FLAG_QOS_MASK:
        i = s.take_slot(msg, flags)  # (before slot_mid is read: it may allocate the slots)
        mid = s.slot_mid[i]
    if pos >= 0:
        put_publish(conn.out, pos, b0, mid, data, 0, tlen, ps, len(data))
    else:
        from broker.spool import spool  # the first time a message does not fit
        spool(b, conn, b0, mid, msg, ps - tlen, b"")
    sent(b, conn, b0, mid, data, tlen, len(data) - ps)
    return True


@micropython.native
def sent(b: "Broker", conn: "Conn", b0: int, mid: int, data: "Buffer", tlen: int,
         plen: int) -> None:
    """Count a kept message's PUBLISH, whose topic is data[0:tlen] and payload plen bytes."""
    b.messages_sent += 1
    if b.log_mask & _LOG_DEBUG:
        from broker.logs import trace
        trace(b, "Sending PUBLISH to", conn, b0, mid, data, 0, tlen, plen)


def pump(b: "Broker", s: "Session") -> None:
    """Send what waits for a connected session while its window and output allow: first
    in-flight messages to send again (resume), then the queue, in order."""
    while s.conn is not None:
        if s.resend:
            if not resend(b, s, s.resend[0]):
                return
            s.resend.pop(0)
        elif s.queue:
            if not send_stored(b, s, s.queue[0], s.queue_flags[0]):
                return
            s.unqueue(0)
        else:
            return
