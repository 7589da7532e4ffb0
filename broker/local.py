"""In-process clients: code in the broker's own process publishes and subscribes with no socket.

On a board this is how the board's own sensor code talks to the hub; on Linux, how a program that
embeds the broker takes part. Topic rules, retained messages and QoS are those of a network
client, except that QoS 1 and 2 complete at once: nothing travels over a wire.

Use a LocalClient from the thread that runs the broker (a board's loop, or between turns of a
port's event loop); the engine is not thread-safe.
"""
from broker.handle_subscribe import send_retained
from broker.lifecycle import LIMIT_MEMORY, discard_session, log_limited, new_session
from broker.session import FLAG_RETAIN, Message, Session
from broker.topics import valid_topic_filter, valid_topic_name

from broker.bytesops import const

_SUBACK_FAILURE = const(0x80)
_LOG_WARNING = const(0x02)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Union
    from broker.engine import Broker
    Handler = Callable[[bytes, bytes, int, bool], None]
    Text = Union[str, bytes]


def _bytes(s: "Text") -> bytes:
    return s.encode() if isinstance(s, str) else s


def publish_message(b: "Broker", msg: Message) -> bool:
    """Broker.publish() of a Message made by the caller (a bridge's, with MQTT 5 properties)."""
    data = msg.data
    tlen = msg.tlen
    why = b.room_for(len(data)) if msg.flags else ""
    if why:
        log_limited(b, LIMIT_MEMORY, _LOG_WARNING, "No room to keep a message of %d bytes on '%s'"
                    " (%s): not published." % (len(data), str(bytes(data[:tlen]), "utf-8"), why))
        return False
    if msg.flags & FLAG_RETAIN:
        if len(data) > tlen + msg.plen:
            b.retained.store(msg)
        else:
            b.retained.delete(data, 0, tlen)
    b.route_message(msg)
    return True


class LocalClient:
    """A client with a session but no connection. Messages arrive through on_message(topic,
    payload, qos, retain) as they are routed; retained ones right after subscribe()."""

    # A bridge's local side gets RETAIN as it was published (like mosquitto's bridges), so
    # that retained messages stay retained on the remote broker.
    retain_as_published = False
    # A bridge speaking MQTT 5 takes each message whole, with its properties: on_message gets
    # the Message (broker.session) in place of the payload.
    whole = False

    def __init__(self, broker: "Broker", client_id: str,
                 on_message: "Optional[Handler]" = None) -> None:
        if not client_id:
            raise ValueError("an in-process client needs a client id")
        if client_id in broker.sessions:
            raise ValueError("client id %r is already in use" % client_id)
        cfg = broker.config
        if len(broker.sessions) >= cfg.max_sessions:
            raise MemoryError("max_sessions (%d) reached" % cfg.max_sessions)
        self.broker = broker
        self.client_id = client_id
        self.on_message = on_message
        s = new_session(broker, client_id, True)
        s.local = self
        self.session = s  # type: Optional[Session]

    def _session(self) -> Session:
        if self.session is None:
            raise ValueError("in-process client %r is closed" % self.client_id)
        return self.session

    def receive(self, topic: bytes, payload: "Any", qos: int, retain: bool) -> None:
        # payload: the Message itself for a client that takes them `whole`
        if self.on_message is not None:
            self.on_message(topic, payload, qos, retain)

    def publish(self, topic: "Text", payload: "Text" = b"", qos: int = 0,
                retain: bool = False) -> bool:
        """Publish as a network client would; an invalid topic or QoS raises ValueError. False
        when a message that must be kept (QoS 1 or 2, or retained) finds no room (memory_limit,
        or a heap nearly full): nothing is delivered then, as a network client's PUBLISH would
        not be acknowledged."""
        self._session()
        t = _bytes(topic)
        cfg = self.broker.config
        if len(t) > cfg.max_topic_length or not valid_topic_name(t, 0, len(t)):
            raise ValueError("invalid topic name %r" % t)  # [MQTT-3.3.2-2] [MQTT-4.7.3-1]
        if qos not in (0, 1, 2):
            raise ValueError("QoS must be 0, 1 or 2")
        if retain and not cfg.retain_available:
            raise ValueError("retained messages are not available (retain_available false)")
        return self.broker.publish(t, _bytes(payload), qos, retain)

    def subscribe(self, topic_filter: "Text", qos: int = 0) -> int:
        """Subscribe; returns the granted QoS, or 0x80 when the subscription table is full.
        Matching retained messages are delivered before this returns [MQTT-3.3.1-6]."""
        s = self._session()
        f = _bytes(topic_filter)
        if len(f) > self.broker.config.max_topic_length or not valid_topic_filter(f):
            raise ValueError("invalid topic filter %r" % f)
        if qos not in (0, 1, 2):
            raise ValueError("QoS must be 0, 1 or 2")
        if self.broker.subs.subscribe(s, f, qos) < 0:
            return _SUBACK_FAILURE
        send_retained(self.broker, s, f, qos)
        return qos

    def unsubscribe(self, topic_filter: "Text") -> bool:
        return self.broker.subs.unsubscribe(self._session(), _bytes(topic_filter))

    def close(self) -> None:
        """End the session: its subscriptions go, as for a clean-session client."""
        s = self.session
        if s is not None:
            self.session = None
            discard_session(self.broker, s)
