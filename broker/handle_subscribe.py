"""SUBSCRIBE and UNSUBSCRIBE: filters, SUBACK codes, retained messages for new subscriptions."""
from broker.codec import (
    MalformedPacket, decode_subscribe, decode_unsubscribe, put_suback, suback_size,
)
from broker.delivery import deliver
from broker.lifecycle import LIMIT_MEMORY
from broker.session import FLAG_QOS_MASK, FLAG_RETAIN
from broker.topics import valid_topic_filter

from broker.bytesops import const

_UNSUBACK = const(11)
_SUBACK_FAILURE = const(0x80)
_LOG_DEBUG = const(0x40)
_LOG_NOTICE = const(0x04)
_LOG_SUBSCRIBE = const(0x10)
_LOG_UNSUBSCRIBE = const(0x20)
_LOG_WARNING = const(0x02)
_SUBSCRIPTION_BYTES = const(512)  # what a subscription may take of the heap (64-bit, make mem)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Union
    from broker.conn import Conn
    from broker.engine import Broker
    from broker.session import Message, Session
    Buffer = Union[bytes, bytearray]


def handle_subscribe(b: "Broker", conn: "Conn", buf: "Buffer", pos: int, end: int) -> None:
    mid, topics = decode_subscribe(buf, pos, end)
    if mid == 0:
        raise MalformedPacket("packet identifier 0")  # [MQTT-2.3.1-1]
    for filt, q in topics:
        if not valid_topic_filter(filt):
            raise MalformedPacket("invalid topic filter")  # [MQTT-4.7.1-2] [MQTT-4.7.1-3]
    s = conn.session
    assert s is not None
    codes = []
    granted = []
    # one client may not take the whole table from the others
    cfg = b.config
    share = cfg.max_subscriptions_per_client or max(1, cfg.max_subscriptions // 2)
    for filt, q in topics:
        if len(filt) > b.config.max_topic_length:
            codes.append(_SUBACK_FAILURE)
            b.log(_LOG_WARNING, "Subscription of %s refused: filter longer than"
                  " max_topic_length." % conn.client_id)
            continue
        if s.acl is not None and not _may_subscribe(s.acl, filt):
            codes.append(_SUBACK_FAILURE)
            b.log(_LOG_NOTICE, "Denied SUBSCRIBE of %s to '%s' (acl_file)."
                  % (conn.client_id, str(filt, "utf-8")))
            continue
        if b.heap_low is not None and b.heap_low(_SUBSCRIPTION_BYTES + 2 * len(filt)):
            codes.append(_SUBACK_FAILURE)  # refused, before the heap runs out under the table
            b.log_limited(LIMIT_MEMORY, _LOG_WARNING, "Subscription of %s to '%s' refused: the"
                          " heap is nearly full." % (conn.client_id, str(filt, "utf-8")))
            continue
        r = b.subs.subscribe(s, filt, q, share)
        if r < 0:
            codes.append(_SUBACK_FAILURE)
            if r == -1:
                why = "max_subscriptions (%d)" % b.config.max_subscriptions
            else:
                why = "max_subscriptions_per_client (%d)" % share
            b.log(_LOG_WARNING, "Subscription of %s to '%s' refused: %s reached."
                  % (conn.client_id, str(filt, "utf-8"), why))
            continue
        codes.append(q)
        granted.append((filt, q))
        if b.log_mask & _LOG_SUBSCRIBE:
            b.log(_LOG_SUBSCRIBE, "%s %d %s" % (conn.client_id, q, str(filt, "utf-8")))
    p = b.reserve(conn, suback_size(len(codes)), False)
    if p >= 0:  # [MQTT-3.8.4-1] [MQTT-3.8.4-5]
        put_suback(conn.out, p, mid, codes)
    if b.log_mask & _LOG_DEBUG:
        b.log(_LOG_DEBUG, "Sending SUBACK to %s" % conn.client_id)
    for filt, q in granted:
        send_retained(b, s, filt, q)


def send_retained(b: "Broker", s: "Session", filt: bytes, q: int) -> None:
    """Retained messages matching a new (or renewed) subscription, with RETAIN set and at
    min(stored, granted) QoS [MQTT-3.3.1-6] [MQTT-3.3.1-8] [MQTT-3.8.4-3]."""
    rules = s.acl
    for m in b.retained.matching(filt):
        if rules is None or _may_read(rules, m):
            mq = m.flags & FLAG_QOS_MASK
            deliver(b, s, m, FLAG_RETAIN | (mq if mq < q else q))
    if b.sys is not None:
        for m in b.sys.matching(filt):
            if rules is None or _may_read(rules, m):
                deliver(b, s, m, FLAG_RETAIN)


def _may_subscribe(rules: "Any", filt: bytes) -> bool:
    from broker.acl import can_subscribe  # only with an acl_file
    return can_subscribe(rules, filt)


def _may_read(rules: "Any", m: "Message") -> bool:
    from broker.acl import READ, can  # only with an acl_file
    return can(rules, READ, m.data, 0, m.tlen)


def handle_unsubscribe(b: "Broker", conn: "Conn", buf: "Buffer", pos: int, end: int) -> None:
    mid, filters = decode_unsubscribe(buf, pos, end)
    if mid == 0:
        raise MalformedPacket("packet identifier 0")  # [MQTT-2.3.1-1]
    for filt in filters:
        if not valid_topic_filter(filt):
            raise MalformedPacket("invalid topic filter")
    s = conn.session
    assert s is not None
    for filt in filters:
        b.subs.unsubscribe(s, filt)
        if b.log_mask & _LOG_UNSUBSCRIBE:
            b.log(_LOG_UNSUBSCRIBE, "%s %s" % (conn.client_id, str(filt, "utf-8")))
    b.send_ack(conn, _UNSUBACK, mid)  # [MQTT-3.10.4-4] [MQTT-3.10.4-5]
