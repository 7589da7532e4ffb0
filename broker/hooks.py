"""Hooks: an application's own answers beside the configuration's, for a broker that runs inside
a program (a board's main.py, ports/aio.py). Loaded only by an application that attaches them;
until then Broker.hooks is None and each place that asks is one `is None` test.

Each hook is optional. They are asked where the password_file and the acl_file are, and give
the same answers, so that a client cannot tell which one refused it:

- authenticate(client_id, username, password, peer), once the configuration has admitted a
  CONNECT: True (or 0) accepts; False refuses with "not authorized"; another int refuses with
  that code, a CONNACK return code (1-5) or an MQTT 5 Reason Code (0x80 and up), each client
  getting it in its own version. A will whose topic authorize_publish denies refuses the
  CONNECT as the acl_file does.
- authorize_publish(client_id, username, topic) and authorize_subscribe(client_id, username,
  topic_filter, qos) -> bool: a denied PUBLISH is dropped (MQTT 5: its acknowledgement says
  0x87, as the acl_file's), a denied filter gets SUBACK 0x80 (MQTT 5: 0x87).
- on_connect(client_id, username, peer) and on_disconnect(client_id, username, peer).
- on(topic_filter, callback): callback(topic, payload) for each message published on a topic
  the filter matches, through one in-process client (broker.local) whose id is "$app".

A hook that raises costs that one operation, never the broker: it is logged, and the client
is refused, the PUBLISH or the subscription denied; a notification or a callback that raises
is only logged.
"""
from broker.topics import Filter, filter_matches

from broker.bytesops import const

_LOG_ERR = const(0x01)
_LOG_NOTICE = const(0x04)
_CONNACK_NOT_AUTHORIZED = const(5)
_PROTOCOL_LEVEL_5 = const(5)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Tuple, Union
    from broker.codec import Connect
    from broker.conn import Conn
    from broker.engine import Broker
    from broker.local import LocalClient
    Buffer = Union[bytes, bytearray]
    Callback = Callable[[bytes, bytes], None]

APP_CLIENT_ID = "$app"

# An MQTT 5 Reason Code a hook gives for a 3.1.1 client: its CONNACK return code (MQTT 5.0
# section 3.2.2.2 pairs them); a code with no counterpart is "not authorized".
_V311_CODE = {0x84: 1, 0x85: 2, 0x88: 3, 0x89: 3, 0x97: 3, 0x9F: 3, 0x86: 4, 0x87: 5}


def _text(b: "Buffer", start: int, end: int) -> str:
    return str(bytes(b[start:end]), "utf-8")


class Hooks:
    authenticate = None  # type: Optional[Callable[[str, Optional[str], Optional[bytes], str], Any]]
    authorize_publish = None  # type: Optional[Callable[[str, Optional[str], str], bool]]
    authorize_subscribe = None  # type: Optional[Callable[[str, Optional[str], str, int], bool]]
    on_connect = None  # type: Optional[Callable[[str, Optional[str], str], None]]
    on_disconnect = None  # type: Optional[Callable[[str, Optional[str], str], None]]
    broker = None  # type: Optional[Broker]
    client = None  # type: Optional[LocalClient]

    def __init__(self) -> None:
        self.routes = []  # type: List[Tuple[Filter, Callback]]

    def attach(self, b: "Broker") -> None:
        """Ask these hooks from now on, and subscribe the message callbacks given so far."""
        self.broker = b
        b.hooks = self
        for f, _ in self.routes:
            self._subscribe(f.filt)

    def on(self, topic_filter: str, callback: "Callback") -> None:
        f = topic_filter.encode()
        self.routes.append((Filter(f), callback))
        if self.broker is not None:
            self._subscribe(f)

    def app(self) -> "LocalClient":
        """The application's in-process client: its publishes, its message callbacks."""
        if self.client is None:
            assert self.broker is not None, "hooks not attached to a broker"
            self.client = self.broker.local_client(APP_CLIENT_ID, self._message)
        return self.client

    def _subscribe(self, f: bytes) -> None:
        if self.app().subscribe(f, 2) >= 0x80:
            raise MemoryError("no room in the subscription table for %r" % f)

    def _message(self, topic: bytes, payload: bytes, qos: int, retain: bool) -> None:
        for f, callback in self.routes:
            if filter_matches(f, topic, 0, len(topic)):
                try:
                    callback(topic, payload)
                except Exception as e:
                    self._failed("a message callback for '%s'" % str(f.filt, "utf-8"), e)

    def _failed(self, what: str, e: "BaseException") -> None:
        b = self.broker
        if b is not None:
            b.log(_LOG_ERR, "Hook %s raised %r." % (what, e))

    def _ask(self, what: str, fn: "Callable[..., Any]", a: "Any", b: "Any", c: "Any",
             d: "Any" = None, n: int = 3) -> "Any":
        """fn's answer, or None when it raised (logged)."""
        try:
            if n == 3:
                return fn(a, b, c)
            return fn(a, b, c, d)
        except Exception as e:
            self._failed(what, e)
            return None

    def connect(self, b: "Broker", conn: "Conn", cid: str, c: "Connect") -> int:
        """handle_connect: 0 to admit the client, else the code that refuses it."""
        code = 0
        fn = self.authenticate
        if fn is not None:
            r = self._ask("authenticate", fn, cid, c.username, c.password, conn.peer, 4)
            if r is True:
                code = 0
            elif r is False or not isinstance(r, int):  # (None: it raised)
                code = _CONNACK_NOT_AUTHORIZED
            else:
                code = r
            if code:
                b.log(_LOG_NOTICE, "Client %s from %s refused by the authenticate hook (0x%02x)."
                      % (cid, conn.peer, code))
        will = c.will_topic
        if not code and will is not None and not self.may_publish_as(cid, c.username, will, 0,
                                                                       len(will)):
            code = _CONNACK_NOT_AUTHORIZED
        if code >= 0x80 and conn.level != _PROTOCOL_LEVEL_5:
            code = _V311_CODE.get(code, _CONNACK_NOT_AUTHORIZED)
        return code

    def connected(self, conn: "Conn") -> None:
        if self.on_connect is not None:
            self._ask("on_connect", self.on_connect, conn.client_id, conn.username, conn.peer)

    def disconnected(self, conn: "Conn") -> None:
        if self.on_disconnect is not None:
            self._ask("on_disconnect", self.on_disconnect, conn.client_id, conn.username,
                      conn.peer)

    def may_publish(self, conn: "Conn", buf: "Buffer", ts: int, te: int) -> bool:
        if self.authorize_publish is None:
            return True
        return self.may_publish_as(conn.client_id, conn.username, buf, ts, te)

    def may_publish_as(self, cid: str, username: "Optional[str]", buf: "Buffer", ts: int,
                       te: int) -> bool:
        fn = self.authorize_publish
        if fn is None:
            return True
        topic = _text(buf, ts, te)
        if self._ask("authorize_publish", fn, cid, username, topic):
            return True
        assert self.broker is not None
        self.broker.log(_LOG_NOTICE, "Denied PUBLISH from %s to '%s' (hook)." % (cid, topic))
        return False

    def may_subscribe(self, conn: "Conn", filt: bytes, qos: int) -> bool:
        fn = self.authorize_subscribe
        if fn is None:
            return True
        text = str(filt, "utf-8")
        if self._ask("authorize_subscribe", fn, conn.client_id, conn.username, text, qos, 4):
            return True
        assert self.broker is not None
        self.broker.log(_LOG_NOTICE, "Denied SUBSCRIBE of %s to '%s' (hook)."
                        % (conn.client_id, text))
        return False


def attach(b: "Broker") -> Hooks:
    """b's hooks, attached now when it has none."""
    h = b.hooks
    if h is None:
        h = Hooks()
        h.attach(b)
    return h
