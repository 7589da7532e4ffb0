"""SUBSCRIBE and UNSUBSCRIBE: filters, SUBACK codes, retained messages for new subscriptions.
Shared subscriptions (`$share/...`) are the table's (broker.shared)."""
from broker.codec import (
    MalformedPacket, decode_subscribe, decode_unsubscribe, put_suback, suback_size,
)
from broker.delivery import deliver
from broker.lifecycle import LIMIT_MEMORY, log_limited
from broker.session import FLAG_QOS_MASK, FLAG_RETAIN
from broker.topics import valid_topic_filter

from broker.bytesops import const
from broker.output import reserve, send_ack

_UNSUBACK = const(11)
_SUBACK_FAILURE = const(0x80)
_LOG_DEBUG = const(0x40)
_LOG_NOTICE = const(0x04)
_LOG_SUBSCRIBE = const(0x10)
_LOG_UNSUBSCRIBE = const(0x20)
_LOG_WARNING = const(0x02)
_SUBSCRIPTION_BYTES = const(512)  # what a subscription may take of the heap (64-bit, make mem)
_PROTOCOL_LEVEL_5 = const(5)
_OPTION_QOS = const(0x03)
_OPTION_ID_SHIFT = const(5)
_OPTIONS_KEPT = const(0x0C)  # of a SUBSCRIBE's options byte: No Local, Retain As Published
_RETAIN_HANDLING_SHIFT = const(4)
_FLAG_ID_SHIFT = const(4)
_RC_SUCCESS = const(0x00)
_RC_NO_SUBSCRIPTION_EXISTED = const(0x11)
_RC_NOT_AUTHORIZED = const(0x87)
_RC_TOPIC_FILTER_INVALID = const(0x8F)
_RC_QUOTA_EXCEEDED = const(0x97)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Union
    from broker.conn import Conn
    from broker.engine import Broker
    from broker.session import Message, Session
    Buffer = Union[bytes, bytearray]


def handle_subscribe(b: "Broker", conn: "Conn", buf: "Buffer", pos: int, end: int) -> None:
    v5 = conn.level == _PROTOCOL_LEVEL_5
    sid = 0
    if v5:
        mid, topics, sid = b.v5.subscribe_in(buf, pos, end)
    else:
        mid, topics = decode_subscribe(buf, pos, end)
    if mid == 0:
        raise MalformedPacket("packet identifier 0")  # [MQTT-2.3.1-1]
    for filt, o in topics:
        if not valid_topic_filter(filt):
            if v5:
                continue  # SUBACK 0x8F for that filter, below
            raise MalformedPacket("invalid topic filter")  # [MQTT-4.7.1-2] [MQTT-4.7.1-3]
        if filt.startswith(b"$share/"):
            from broker.shared import check  # the first shared subscription
            check(filt, o if v5 else 0)
    s = conn.session
    assert s is not None
    codes = []
    granted = []
    # one client may not take the whole table from the others
    cfg = b.config
    share = cfg.max_subscriptions_per_client or max(1, cfg.max_subscriptions // 2)
    kept = sid << _OPTION_ID_SHIFT
    for filt, o in topics:
        q = o & _OPTION_QOS
        if q > cfg.max_qos:
            q = cfg.max_qos  # accepted, granted at most max_qos [MQTT-3.2.2-10]
        code = _RC_QUOTA_EXCEEDED  # (SUBACK 0x80 for a 3.1.1 client, as every refusal)
        if v5 and not valid_topic_filter(filt):
            code = _RC_TOPIC_FILTER_INVALID  # (3.1.1 closed the connection above)
            b.log(_LOG_NOTICE, "Subscription of %s refused: invalid topic filter."
                  % conn.client_id)
        elif len(filt) > cfg.max_topic_length:
            code = _RC_TOPIC_FILTER_INVALID
            b.log(_LOG_WARNING, "Subscription of %s refused: filter longer than"
                  " max_topic_length." % conn.client_id)
        elif s.acl is not None and not _may_subscribe(s.acl, filt):
            code = _RC_NOT_AUTHORIZED
            b.log(_LOG_NOTICE, "Denied SUBSCRIBE of %s to '%s' (acl_file)."
                  % (conn.client_id, str(filt, "utf-8")))
        elif b.hooks is not None and not b.hooks.may_subscribe(conn, filt, q):
            code = _RC_NOT_AUTHORIZED
        elif b.heap_low is not None and b.heap_low(_SUBSCRIPTION_BYTES + 2 * len(filt)):
            # refused, before the heap runs out under the table
            log_limited(b, LIMIT_MEMORY, _LOG_WARNING, "Subscription of %s to '%s' refused: the"
                        " heap is nearly full." % (conn.client_id, str(filt, "utf-8")))
        else:
            r = b.subs.subscribe(s, filt, q | (o & _OPTIONS_KEPT) | kept, share)
            if r >= 0:
                if b.ledger.changes is not None:  # persistence on
                    b.ledger.changes.session(s)
                codes.append(q)
                if b.log_mask & _LOG_SUBSCRIBE:
                    b.log(_LOG_SUBSCRIBE, "%s %d %s" % (conn.client_id, q, str(filt, "utf-8")))
                # MQTT 5's Retain Handling: 0 sends the retained messages, 1 only to a new
                # subscription, 2 never [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]; a
                # shared subscription gets none (MQTT 5.0 section 4.8.2)
                rh = o >> _RETAIN_HANDLING_SHIFT
                if (rh == 0 or (rh == 1 and r == 1)) and not filt.startswith(b"$share/"):
                    granted.append((filt, q))
                continue
            if r == -1:
                why = "max_subscriptions (%d)" % cfg.max_subscriptions
            else:
                why = "max_subscriptions_per_client (%d)" % share
            b.log(_LOG_WARNING, "Subscription of %s to '%s' refused: %s reached."
                  % (conn.client_id, str(filt, "utf-8"), why))
        codes.append(code if v5 else _SUBACK_FAILURE)
    if v5:
        b.v5.send_suback(b, conn, mid, codes)
    else:
        p = reserve(b, conn, suback_size(len(codes)), False)
        if p >= 0:  # [MQTT-3.8.4-1] [MQTT-3.8.4-5]
            put_suback(conn.out, p, mid, codes)
        if b.log_mask & _LOG_DEBUG:
            b.log(_LOG_DEBUG, "Sending SUBACK to %s" % conn.client_id)
    for filt, q in granted:
        send_retained(b, s, filt, q, sid)


def send_retained(b: "Broker", s: "Session", filt: bytes, q: int, sid: int = 0) -> None:
    """Retained messages matching a new (or renewed) subscription, with RETAIN set and at
    min(stored, granted) QoS [MQTT-3.3.1-6] [MQTT-3.3.1-8] [MQTT-3.8.4-3]; sid: the MQTT 5
    subscription's Subscription Identifier."""
    rules = s.acl
    f = FLAG_RETAIN | (sid << _FLAG_ID_SHIFT)
    for m in b.retained.matching(filt):
        if rules is None or _may_read(rules, m):
            mq = m.flags & FLAG_QOS_MASK
            deliver(b, s, m, f | (mq if mq < q else q))
    # only a filter beginning with '$' matches a $SYS topic: a wildcard first level does not
    # [MQTT-4.7.2-1]
    if b.sys is not None and filt[0] == 0x24:
        for m in b.sys.matching(filt):
            if rules is None or _may_read(rules, m):
                deliver(b, s, m, f)


def _may_subscribe(rules: "Any", filt: bytes) -> bool:
    from broker.acl import can_subscribe  # only with an acl_file
    if filt.startswith(b"$share/"):  # the messages it reads: its filter's
        from broker.shared import filter_start
        filt = filt[filter_start(filt):]
    return can_subscribe(rules, filt)


def _may_read(rules: "Any", m: "Message") -> bool:
    from broker.acl import READ, can  # only with an acl_file
    return can(rules, READ, m.data, 0, m.tlen)


def handle_unsubscribe(b: "Broker", conn: "Conn", buf: "Buffer", pos: int, end: int) -> None:
    if conn.level == _PROTOCOL_LEVEL_5:
        mid, filters = b.v5.unsubscribe_in(buf, pos, end)
    else:
        mid, filters = decode_unsubscribe(buf, pos, end)
    if mid == 0:
        raise MalformedPacket("packet identifier 0")  # [MQTT-2.3.1-1]
    for filt in filters:
        if not valid_topic_filter(filt):
            raise MalformedPacket("invalid topic filter")
    s = conn.session
    assert s is not None
    if b.ledger.changes is not None:  # persistence on
        b.ledger.changes.session(s)
    codes = []
    for filt in filters:
        codes.append(_RC_SUCCESS if b.subs.unsubscribe(s, filt)
                     else _RC_NO_SUBSCRIPTION_EXISTED)
        if b.log_mask & _LOG_UNSUBSCRIBE:
            b.log(_LOG_UNSUBSCRIBE, "%s %s" % (conn.client_id, str(filt, "utf-8")))
    if conn.level == _PROTOCOL_LEVEL_5:
        b.v5.send_unsuback(b, conn, mid, codes)
    else:
        send_ack(b, conn, _UNSUBACK, mid)  # [MQTT-3.10.4-4] [MQTT-3.10.4-5]
