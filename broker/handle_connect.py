"""CONNECT: validation [MQTT-3.1.2], client identifiers, session takeover and resumption."""
from broker.codec import MalformedPacket, decode_connect
from broker.conn import CONNECTED
from broker.keepalive import keepalive_ms
from broker import lifecycle
from broker.delivery import pump
from broker.session import Message
from broker.topics import valid_topic_name

from broker.bytesops import const
from broker.output import send_connack

_CONNACK_ACCEPTED = const(0)
_CONNACK_BAD_USERNAME_OR_PASSWORD = const(4)
_CONNACK_IDENTIFIER_REJECTED = const(2)
_CONNACK_NOT_AUTHORIZED = const(5)
_CONNACK_SERVER_UNAVAILABLE = const(3)
_CONNACK_UNACCEPTABLE_PROTOCOL_VERSION = const(1)
_PROTOCOL_LEVEL_31 = const(3)
_PROTOCOL_LEVEL_5 = const(5)
_RC_SESSION_TAKEN_OVER = const(0x8E)
_RC_RETAIN_NOT_SUPPORTED = const(0x9A)
_RC_QOS_NOT_SUPPORTED = const(0x9B)
_LOG_NOTICE = const(0x04)
_LOG_WARNING = const(0x02)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Union
    from broker.conn import Conn
    from broker.engine import Broker
    from broker.session import Session
    Buffer = Union[bytes, bytearray]


def _refuse(b: "Broker", conn: "Conn", code: int, why: str) -> None:
    if why:
        b.log(_LOG_NOTICE, why)
    send_connack(b, conn, False, code)  # session present 0 on refusal [MQTT-3.2.2-4]
    lifecycle.close(b, conn, "", False)


def _use_v5(b: "Broker", conn: "Conn") -> None:
    conn.level = _PROTOCOL_LEVEL_5  # (first: a heap too full for the v5 code refuses in v5)
    conn.reader.v5 = True
    if b.v5 is None:
        from broker import v5  # the first MQTT 5 client
        b.v5 = v5
    conn.v5 = b.v5.State()


def handle_connect(b: "Broker", conn: "Conn", buf: "Buffer", pos: int, end: int) -> None:
    try:
        c = decode_connect(buf, pos, end)
    except MalformedPacket:
        at = pos + 2 + ((buf[pos] << 8) | buf[pos + 1]) if pos + 2 <= end else end
        if at < end and buf[at] == _PROTOCOL_LEVEL_5:
            _use_v5(b, conn)  # so that the refusal says why, in a v5 CONNACK
        raise
    cfg = b.config
    # the options of the listener conn came through, with per_listener_settings true
    sec = conn.listener or cfg  # type: Any
    if not c.supported():
        _refuse(b, conn, _CONNACK_UNACCEPTABLE_PROTOCOL_VERSION,  # [MQTT-3.1.2-2]
                "Client %s: unsupported protocol '%s' level %d, refused."
                % (conn.peer, c.protocol_name, c.protocol_level))
        return
    v5 = c.protocol_level == _PROTOCOL_LEVEL_5
    if v5:
        _use_v5(b, conn)
        why = b.v5.connect(b, conn, c)
        if why:
            _refuse(b, conn, why, "Client %s: CONNECT refused (0x%02x)." % (conn.peer, why))
            return
    conn.level = c.protocol_level
    if c.protocol_level == _PROTOCOL_LEVEL_31:
        conn.reader.v31 = True
    if c.will_topic is not None:
        wt = c.will_topic
        if len(wt) > cfg.max_topic_length or not valid_topic_name(wt, 0, len(wt)):
            raise MalformedPacket("invalid will topic")
        if c.will_retain and not cfg.retain_available:
            e = MalformedPacket("retained will but retain_available is false")
            e.reason = _RC_RETAIN_NOT_SUPPORTED
            raise e
        if c.will_qos > cfg.max_qos:  # [MQTT-3.2.2-12]; a 3.1.1 client is closed, as mosquitto
            e = MalformedPacket("will QoS %d above max_qos %d" % (c.will_qos, cfg.max_qos))
            e.reason = _RC_QOS_NOT_SUPPORTED
            raise e
    cid = c.client_id
    if c.protocol_level == _PROTOCOL_LEVEL_31 and not 0 < len(cid) <= 23:
        _refuse(b, conn, _CONNACK_IDENTIFIER_REJECTED,
                "Client %s: MQTT 3.1 client id must be 1 to 23 characters, refused."
                % conn.peer)
        return
    keepalive = c.keepalive
    if not cid:
        if not c.clean_session and not v5:
            _refuse(b, conn, _CONNACK_IDENTIFIER_REJECTED,  # [MQTT-3.1.3-8]
                    "Client %s: empty client id with clean session 0, refused." % conn.peer)
            return
        from broker.client_ids import generate  # a client that sent no id [MQTT-3.1.3-6]
        cid = generate(b, sec)
        if not cid:
            _refuse(b, conn, _CONNACK_IDENTIFIER_REJECTED, "Client %s: empty client id and"
                    " allow_zero_length_clientid false, refused." % conn.peer)
            return
        if v5:
            conn.v5.assigned = cid  # [MQTT-3.2.2-16]
    if keepalive > cfg.max_keepalive:
        if v5:  # [MQTT-3.2.2-21]
            keepalive = conn.v5.keep_alive = cfg.max_keepalive
        else:
            _refuse(b, conn, _CONNACK_IDENTIFIER_REJECTED,
                    "Client %s: keepalive %d above max_keepalive %d, refused."
                    % (cid, c.keepalive, cfg.max_keepalive))
            return
    name = conn.certificate_name
    if name is not None:
        # use_identity_as_username: the certificate names the client, whatever its CONNECT
        # says, and no password is asked for (mosquitto 2.0)
        c.username = name() or None
        c.password = None
        if c.username is None:
            _refuse(b, conn, _CONNACK_BAD_USERNAME_OR_PASSWORD,
                    "Client %s from %s: its certificate gives no username, refused."
                    % (cid, conn.peer))
            return
    elif sec.passwords is not None and (c.username is not None or c.password is not None):
        from broker.auth import check  # only with a password_file
        if not check(sec.passwords.get(c.username or ""), c.password, sec.password_dummy):
            _refuse(b, conn, _CONNACK_BAD_USERNAME_OR_PASSWORD,
                    "Client %s from %s: bad username or password." % (cid, conn.peer))
            return
    elif not sec.allow_anonymous:
        _refuse(b, conn, _CONNACK_NOT_AUTHORIZED,
                "Client %s from %s not authorised (anonymous clients are not allowed)."
                % (cid, conn.peer))
        return
    if b.hooks is not None:
        why = b.hooks.connect(b, conn, cid, c)
        if why:
            _refuse(b, conn, why, "")
            return
    rules = None
    if sec.acl is not None:
        from broker.acl import WRITE, can  # only with an acl_file
        rules = sec.acl.rules_for(cid, c.username)
        will = c.will_topic
        if will is not None and not can(rules, WRITE, will, 0, len(will)):
            _refuse(b, conn, _CONNACK_NOT_AUTHORIZED,
                    "Client %s from %s: will topic '%s' not allowed by acl_file, refused."
                    % (cid, conn.peer, str(will, "utf-8")))
            return
    if c.will_topic is not None:
        why = b.room_for(len(c.will_topic) + len(c.will_payload))
        if why:  # a client is admitted only with what it asks the broker to keep
            lifecycle.log_limited(b, lifecycle.LIMIT_MEMORY, _LOG_WARNING,
                                  "Client %s refused: no room to keep its will (%s)." % (cid, why))
            _refuse(b, conn, _CONNACK_SERVER_UNAVAILABLE, "")
            return
    old = b.sessions.get(cid)
    if old is not None and old.local is not None:
        _refuse(b, conn, _CONNACK_IDENTIFIER_REJECTED,
                "Client %s: the id belongs to an in-process client, refused." % cid)
        return
    if old is not None and old.conn is not None:
        b.log(_LOG_NOTICE, "Client %s already connected, closing old connection." % cid)
        if old.conn.level == _PROTOCOL_LEVEL_5:
            b.v5.refuse(b, old.conn, _RC_SESSION_TAKEN_OVER)  # [MQTT-3.1.4-3]
        # [MQTT-3.1.4-2]; as mosquitto 2.0, the will goes out only when the session ends with
        # the old connection: a persistent session continued by a persistent connection is
        # the same client coming back (MQTT 5's will delay has the same effect)
        lifecycle.close(b, old.conn, "", old.clean or c.clean_session)
        old = b.sessions.get(cid)
    if b.connected >= cfg.max_connections:
        lifecycle.log_limited(b, lifecycle.LIMIT_CONNECTIONS, _LOG_NOTICE,
                              "Client %s refused: max_connections (%d) reached."
                              % (cid, cfg.max_connections))
        _refuse(b, conn, _CONNACK_SERVER_UNAVAILABLE, "")
        return
    if old is not None and c.clean_session:
        lifecycle.discard_session(b, old)  # [MQTT-3.1.2-6]
        old = None
    if old is None and len(b.sessions) >= cfg.max_sessions:
        from broker.expiry import evict  # only when the session table is full
        if not evict(b, cid):
            _refuse(b, conn, _CONNACK_SERVER_UNAVAILABLE, "Client %s refused: max_sessions"
                    " (%d) reached and every session is connected." % (cid, cfg.max_sessions))
            return
    present = old is not None
    if old is not None and old.will is not None:  # back within its Will Delay [MQTT-3.1.3-9]
        b.ledger.release(old.will)
        old.will = None
    s = old if old is not None else lifecycle.new_session(b, cid, c.clean_session)
    s.clean = c.clean_session
    if v5:
        b.v5.start_session(s, conn, c)
    elif s.expiry >= 0 or s.window != 65535:  # a session an MQTT 5 client left
        s.expiry = -1
        s.window = 65535
    s.conn = conn
    conn.session = s
    conn.client_id = cid
    if b.ledger.changes is not None:  # persistence on: a session made, continued, or made clean
        b.ledger.changes.session(s)
    if c.username is not None:
        conn.username = c.username
    if rules is not None:
        s.acl = rules
        if present:
            from broker.acl import drop_unreadable  # loaded: rules came from it
            drop_unreadable(b, s)
    elif s.acl is not None:
        s.acl = None  # continued through a listener without an acl_file (per_listener_settings)
    conn.state = CONNECTED
    b.connected += 1
    if b.connected > b.connected_max:
        b.connected_max = b.connected
    conn.keepalive_ms = keepalive_ms(keepalive)
    if c.will_topic is not None:
        if v5:
            lifecycle.set_will(b, conn, b.v5.will(c))
        else:
            data = c.will_topic + c.will_payload
            lifecycle.set_will(b, conn, Message(data, len(c.will_topic), c.will_qos, c.will_retain))
    if cfg.connection_messages:
        b.log(_LOG_NOTICE, "New client connected from %s as %s (p%d, c%d, k%d)."
              % (conn.peer, cid, 1 if conn.level == _PROTOCOL_LEVEL_31 else 2 if not v5 else 5,
                 1 if c.clean_session else 0, keepalive))
    # MQTT 3.1 has no session present flag: that byte is reserved there.
    send_connack(b, conn, present and conn.level != _PROTOCOL_LEVEL_31,
                 _CONNACK_ACCEPTED)  # [MQTT-3.2.2-2] [MQTT-3.2.2-3]
    if b.hooks is not None:
        b.hooks.connected(conn)
    if present:
        resume(b, s)


def resume(b: "Broker", s: "Session") -> None:
    """Send unacknowledged PUBLISH (DUP set) and PUBREL packets again with their original
    identifiers, in their original order [MQTT-4.4.0-1], then whatever was queued; what the
    output cannot take yet goes out as it drains (broker.delivery.pump)."""
    s.resend = s.inflight_order()
    pump(b, s)
