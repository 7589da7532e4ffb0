"""A connection's life around the protocol state machine, and the sessions table it changes:
accepting a socket, losing it, closing it (with its will), the heap running out while serving
it, shutdown; a session made, continued or discarded; a will kept until it is published.

None of it is on the routing path. A port calls accept(broker, ...), lost(), close() and
shutdown() here, as the core's own modules do: functions of the Broker's tables, not methods, so
that the one source means the same compiled (mypyc) as interpreted. Floods of log lines (a storm
of clients, a heap that ran out) are held back here (log_limited).
"""
from broker.bytesops import const
from broker.conn import CLOSED, CONNECTED, Conn
from broker.retain import retained_share
from broker.session import FLAG_RETAIN, Session
from broker.output import send_connack

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional
    from broker.codec import MalformedPacket
    from broker.engine import Broker
    from broker.session import Message

_LOG_ERR = const(0x01)
_LOG_NOTICE = const(0x04)
_LOG_WARNING = const(0x02)
_CONNACK_SERVER_UNAVAILABLE = const(3)
_PROTOCOL_LEVEL_5 = const(5)
_RC_SERVER_SHUTTING_DOWN = const(0x8B)
_PENDING_CONNECTIONS = const(16)  # sockets allowed beyond max_connections, to answer CONNACK 0x03

# Conditions whose log lines come in floods: log_limited() logs the first line of each in an
# interval and counts the others, which broker.keepalive sums up when the interval is over.
_LIMIT_OUT_OF_MEMORY = const(0)
LIMIT_CONNECTIONS = const(1)   # sockets or clients refused: too many connections
LIMIT_ACCEPT = const(2)        # accept() failing (EMFILE, ENFILE, ENOBUFS)
LIMIT_MEMORY = const(3)        # messages or clients refused: no room to keep them
_LIMITS = const(4)


def log_limited(b: "Broker", cond: int, level: int, msg: str) -> None:
    """Log msg unless a line of the same condition (a LIMIT_* constant) was logged in this
    interval; then it is counted, and the interval's summary gives the count and the last."""
    held = b.limited
    if held is None:  # per condition: lines held back, the last one and its level
        held = b.limited = [0, "", 0] * _LIMITS
        b.limited_since = b.now
    i = cond * 3
    held[i] += 1
    if held[i] == 1:
        b.log(level, msg)
    else:
        held[i + 1] = msg
        held[i + 2] = level


def name(conn: Conn) -> str:
    """How a log line names conn: its client id, or before CONNECT its address."""
    return conn.client_id if conn.client_id else conn.peer


def accept(b: "Broker", handle: "Any", peer: str) -> "Optional[Conn]":
    """A socket was accepted. None means over capacity: the port closes it at once."""
    if len(b.conns) >= b.config.max_connections + _PENDING_CONNECTIONS:
        log_limited(b, LIMIT_CONNECTIONS, _LOG_WARNING,
                    "Refusing connection from %s: too many connections." % peer)
        return None
    conn = Conn(handle, peer, b.config.max_packet_size, b.now)
    b.connections_total += 1
    b.conns.append(conn)
    return conn


def lost(b: "Broker", conn: Conn, reason: str = "") -> None:
    """The socket reached end of file or failed."""
    if conn.state == CLOSED:
        return
    if reason:
        if b.config.connection_messages:
            b.log(_LOG_NOTICE, "Socket error on client %s, disconnecting." % name(conn))
        close(b, conn, "", True)
    elif conn.state == CONNECTED:
        close(b, conn, "Client %s closed its connection." % conn.client_id, True)
    else:
        close(b, conn, "", True)


def out_of_memory(b: "Broker", conn: Conn, refuse: bool = False) -> None:
    """Drop the connection that was being served when the heap ran out, will included, and
    keep serving the others. Its gathering buffer goes first so that closing can allocate;
    if even that fails, the bookkeeping in close() that needs no memory is already done.
    refuse: it ran out on the client's CONNECT, before the CONNACK: the client is told
    CONNACK 0x03 (server unavailable), never left without an answer."""
    conn.reader.reset()
    if refuse:
        send_connack(b, conn, False, _CONNACK_SERVER_UNAVAILABLE)
    try:
        close(b, conn, "", True)
        log_limited(b, _LIMIT_OUT_OF_MEMORY, _LOG_ERR, "Out of memory while serving %s,"
                    " disconnecting." % name(conn))
    except MemoryError:
        pass


def protocol_error(b: "Broker", conn: Conn, e: "MalformedPacket") -> None:
    """conn broke the protocol (e): an MQTT 5 client is told why first [MQTT-4.13.1-1]."""
    b.log(_LOG_NOTICE, "Client %s sent a malformed or invalid packet (%s), disconnecting."
          % (name(conn), e))
    if conn.level == _PROTOCOL_LEVEL_5:
        b.v5.refuse(b, conn, e.reason, str(e))  # the Reason String says what was wrong
    close(b, conn, "", True)


def close(b: "Broker", conn: Conn, why: str, send_will: bool) -> None:
    """Finish with conn: publish its will if asked, detach or discard its session."""
    if conn.state == CLOSED:
        return
    # Bookkeeping that needs no memory first: this also runs when the heap is exhausted.
    was_connected = conn.state == CONNECTED
    conn.state = CLOSED
    if conn in b.conns:
        b.conns.remove(conn)
    if was_connected:
        b.connected -= 1
    s = conn.session
    conn.session = None
    if s is not None:
        s.conn = None
        s.seen = b.seconds
        if b.ledger.changes is not None:  # persistence on: when it was seen, its will
            b.ledger.changes.session(s)
        if s.clean:
            discard_session(b, s)
    will = conn.will
    if not conn.in_wq:
        conn.in_wq = True
        b.wq.append(conn)
    if why and b.config.connection_messages:
        b.log(_LOG_NOTICE, why)
    if was_connected and b.hooks is not None:
        b.hooks.disconnected(conn)
    if will is not None:
        if send_will:
            if conn.level == _PROTOCOL_LEVEL_5:
                b.v5.will_gone(b, conn, s, will)  # its Will Delay Interval, its expiry
            else:
                publish_will(b, will, conn.client_id)
        set_will(b, conn, None)


def shutdown(b: "Broker") -> None:
    """Close every connection (no wills: the broker, not the client, is going away)."""
    for conn in b.conns[:]:
        if conn.level == _PROTOCOL_LEVEL_5 and conn.state == CONNECTED:
            b.v5.refuse(b, conn, _RC_SERVER_SHUTTING_DOWN)
        close(b, conn, "", False)


def new_session(b: "Broker", client_id: str, clean: bool) -> Session:
    cfg = b.config
    s = Session(client_id, clean, cfg.max_inflight_messages, cfg.max_queued_messages,
                b.ledger)
    add_session(b, client_id, s)
    return s


def add_session(b: "Broker", client_id: str, s: Session) -> None:
    b.sessions[client_id] = s
    hits = b.hits
    if len(b.sessions) >= len(hits):  # routing can put every session in it
        hits.extend([None] * len(hits))


def discard_session(b: "Broker", s: Session) -> None:
    if s.will is not None:  # an MQTT 5 will waiting out its delay: the session ends first
        b.v5.publish_delayed_will(b, s)
    b.subs.remove_session(s)
    s.clear()
    if b.sessions.get(s.client_id) is s:
        del b.sessions[s.client_id]
        if b.ledger.changes is not None:  # persistence on: gone from the saved state too
            b.ledger.changes.session(s)


def set_will(b: "Broker", conn: Conn, will: "Optional[Message]") -> None:
    """A connection's will, kept (and counted) until it is published or dropped."""
    old = conn.will
    if old is not None:
        b.ledger.release(old)
    conn.will = will
    if will is not None:
        b.ledger.hold(will)


def publish_will(b: "Broker", will: "Message", owner: str) -> None:
    data = will.data
    tlen = will.tlen
    if will.flags & FLAG_RETAIN:
        if len(data) == tlen + will.plen:
            b.retained.delete(data, 0, tlen)
        elif b.retained.store(will, owner, retained_share(b.config)):
            b.log(_LOG_WARNING, "Retained will of %s not kept: its share of the retained"
                  " table is taken, or max_retained_messages reached." % owner)
    b.route_message(will)
