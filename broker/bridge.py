"""A bridge: this broker as an MQTT client of a remote broker (mosquitto's `connection`), at
3.1.1 or 3.1, or at 5.0 with broker.bridge5.

Sans-I/O like the engine. The port opens a TCP connection when due() says so, reports it with
opened() or lost(), hands over the bytes it reads (feed) and the clock (tick), and sends what
`conn` holds as it sends a client's output (Conn.chunk() and Conn.sent(), then
Broker.drained(conn) once it is all out); when `must_close` is set it closes the socket and
calls lost(). Imported only when the configuration has a bridge.

The local side is an in-process client (broker.local) subscribed to the `out` topics, which
receives messages with the RETAIN flag they were published with. Outgoing QoS 1 and 2 messages
go through a session's in-flight window and queue as a client's do (broker.session,
broker.delivery): they wait in the bounded queue while the link is down and go out in order, at
most max_inflight_messages at a time; each stays in flight until the remote broker acknowledges
it (PUBACK, or PUBREC then PUBCOMP) and is sent again, DUP set, after a reconnection
[MQTT-4.4.0-1]. An incoming PUBLISH is routed locally before it is acknowledged. Messages the
bridge itself publishes locally are never sent back out on it ("no local").
"""
from broker.bridge_settings import IN, OUT
from broker.codec import Connect, MalformedPacket, parse_publish
from broker.codec_client import (
    connect_size, put_connect, put_disconnect, put_pingreq, put_subscribe, subscribe_size,
)
from broker.conn import CONNECTED, Conn
from broker.const import (
    CONNACK, CONNECT_FLAG_CLEAN_SESSION, DISCONNECT, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC,
    PUBREL, SUBACK, SUBACK_FAILURE, CONNACK_UNACCEPTABLE_PROTOCOL_VERSION, LOG_DEBUG, LOG_ERR,
    LOG_NOTICE, LOG_WARNING, PACKET_NAMES, PROTOCOL_LEVEL_31, PROTOCOL_LEVEL_311,
    PROTOCOL_LEVEL_5, const,
)
from broker.delivery import pump, send_stored
from broker.handle_publish import handle_acknowledgement
from broker.keepalive import keepalive_ms, ticks_diff
from broker.lifecycle import LIMIT_MEMORY, log_limited
from broker.local import LocalClient, publish_message
from broker.session import Ledger, Message, Session
from broker.topics import Filter, filter_matches, valid_topic_name
from broker.output import reserve, send_ack, write_publish

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional, Tuple, Union
    from broker.bridge_settings import BridgeSettings, TopicRule
    from broker.engine import Broker
    Buffer = Union[bytes, bytearray]

# Link states.
IDLE = const(0)          # waiting until the next attempt
CONNECTING = const(1)    # the port is opening the TCP connection
WAIT_CONNACK = const(2)  # CONNECT sent
UP = const(3)

_PRIVATE = const(0x80)  # protocol level bit that tells mosquitto "a bridge" (try_private)
_SUBSCRIBING = const(4)  # in-flight slot 0's state: the SUBSCRIBE's (no acknowledgement finds it)
_CONNACK_REASONS = ("accepted", "unacceptable protocol version", "identifier rejected",
                    "server unavailable", "bad user name or password", "not authorised")


class Bridge:
    state = IDLE
    must_close = False
    injecting = False  # routing one of our own messages locally: do not send it back
    retry_now = False
    address_index = 0
    reported = 0
    sub_mid = 0
    last_tx = 0
    # The connection's framer and output: opened() makes one for each connection, and a link
    # that is down holds none (the port asks for it only while connected).
    conn = None  # type: Conn  # type: ignore[assignment]
    v5 = None  # type: Any  # broker.bridge5, for a bridge set to mqttv50

    def __init__(self, broker: "Broker", settings: "BridgeSettings", hostname: str = "") -> None:
        self.broker = broker
        self.settings = settings
        cfg = broker.config
        name = settings.name
        self.name = name
        self.client_id = settings.remote_clientid or (
            "%s.%s" % (hostname, name) if hostname else name)
        self.state_topic = (settings.notification_topic
                            or "$SYS/broker/connection/%s/state" % name).encode()
        self.keepalive_ms = settings.keepalive_interval * 1000  # (the remote's, once it says)
        self.level = settings.protocol_level
        self.private = settings.try_private
        self.delay = settings.restart_base * 1000
        now = broker.now
        self.next_attempt = now
        self.since = now
        self.seed = (now ^ len(self.client_id) * 2654435) & 0x3FFFFFFF
        # Outgoing messages: a session of the bridge's own, outside the broker's tables and
        # its memory_limit. Its window has a slot more, which the SUBSCRIBE holds (_connack);
        # 65535 slots at the most: as many packet identifiers as there are.
        self.session = Session(self.client_id, settings.cleansession,
                               min(cfg.max_inflight_messages, 65534) + 1,
                               settings.max_queued_messages or cfg.max_queued_messages, Ledger())
        self.out_rules = []  # type: List[Tuple[Filter, TopicRule]]
        self.in_rules = []  # type: List[Tuple[Filter, TopicRule]]
        for t in settings.topics:
            if t.direction & OUT:
                self.out_rules.append((Filter(t.local_filter), t))
            if t.direction & IN:
                self.in_rules.append((Filter(t.remote_filter), t))
        local = LocalClient(broker, settings.local_clientid or "local." + self.client_id,
                            self._from_local)
        local.retain_as_published = True
        if self.level == PROTOCOL_LEVEL_5:
            from broker import bridge5  # a bridge set to mqttv50 only
            bridge5.attach(broker)
            self.v5 = bridge5
            local.whole = True  # the messages going out keep their properties
        self.local = local
        for f, t in self.out_rules:
            if local.subscribe(t.local_filter, t.qos) == SUBACK_FAILURE:
                broker.log(LOG_ERR, "Bridge %s: local subscription to '%s' refused"
                           " (max_subscriptions reached)." % (name, str(t.local_filter, "utf-8")))

    # ---- the port's entry points ----

    def due(self, now: int) -> bool:
        """Whether the port should open a connection now."""
        return self.state == IDLE and ticks_diff(now, self.next_attempt) >= 0

    def address(self) -> "Tuple[str, int]":
        return self.settings.addresses[self.address_index]

    def connecting(self, now: int) -> None:
        """The port started a (non-blocking) connect to address()."""
        self.state = CONNECTING
        self.since = now
        self.keepalive_ms = self.settings.keepalive_interval * 1000
        host, port = self.address()
        self.broker.log(LOG_NOTICE, "Connecting bridge %s (%s:%d)" % (self.name, host, port))

    def opened(self, now: int) -> None:
        """The TCP connection is up: send CONNECT."""
        self.state = WAIT_CONNACK
        self.since = now
        conn = Conn(None, self.name, self.broker.config.max_packet_size, now)
        conn.client_id = self.client_id
        conn.in_wq = True  # never in the broker's write queue: the port's bridge link sends it
        if self.level == PROTOCOL_LEVEL_5:
            self.v5.opened(self, conn)
        self.conn = conn
        self._connect()
        conn.busy = False
        self.last_tx = now

    def lost(self, now: int, reason: str = "") -> None:
        """The connection failed or was closed (also after must_close): retry later. What was
        in flight stays in flight, to be sent again."""
        if self.state == IDLE:
            return
        if self.v5 is not None:
            self.v5.count_dropped(self)
        self.conn = None  # type: ignore[assignment]  # what it had not sent goes with it
        self.session.conn = None
        if self.state == UP:
            self.broker.log(LOG_NOTICE, "Bridge %s disconnected%s." % (
                self.name, " (%s)" % reason if reason else ""))
            self._notify_local(b"0")
        else:
            host, port = self.address()
            self.broker.log(LOG_NOTICE, "Bridge %s: connection to %s:%d failed%s." % (
                self.name, host, port, " (%s)" % reason if reason else ""))
            if not self.retry_now:
                self.address_index = (self.address_index + 1) % len(self.settings.addresses)
        self.state = IDLE
        self.must_close = False
        if self.retry_now:
            self.retry_now = False
            self.next_attempt = now
        else:
            self.next_attempt = (now + self._backoff()) & 0x3FFFFFFF

    def feed(self, buf: "Buffer", n: int) -> None:
        """Bytes buf[0:n] arrived from the remote broker."""
        conn = self.conn
        reader = conn.reader
        b = self.broker
        b.bytes_received += n
        pos = 0
        try:
            while pos < n and not self.must_close:
                pos = reader.take(buf, pos, n)
                if reader.ready:
                    conn.last_rx = b.now
                    b.packets_received += 1
                    self._packet(reader.b0, reader.buf, reader.start, reader.end)
                    reader.release()
        except MalformedPacket as e:
            if self.level == PROTOCOL_LEVEL_5:
                self.v5.refuse(b, conn, e.reason)
            self._close("the remote broker sent a malformed packet: %s" % e)
        except MemoryError:
            reader.reset()
            self._close("out of memory")
        except Exception as e:  # a defect here must cost the link, never the broker
            b.log(LOG_ERR, "Bridge %s: internal error: %r" % (self.name, e))
            self._close("internal error")

    def tick(self, now: int) -> None:
        """Keepalive [MQTT-3.1.2-23] and the time allowed to connect; the dropped count."""
        ka = self.keepalive_ms  # (0: a Server Keep Alive of 0, no keep alive)
        if self.state == CONNECTING or self.state == WAIT_CONNACK:
            if ticks_diff(now, self.since) > ka:
                self._close("no answer within keepalive_interval")
        elif self.state == UP:
            conn = self.conn
            if conn.busy:  # something was sent since the last tick
                conn.busy = False
                self.last_tx = now
            if ka and ticks_diff(now, conn.last_rx) > keepalive_ms(ka // 1000):
                self._close("the remote broker stopped answering")
            elif ka and ticks_diff(now, self.last_tx) >= ka:
                pos = reserve(self.broker, conn, 2, False)
                put_pingreq(conn.out, pos)
                conn.busy = False
                self.last_tx = now
            if self.v5 is not None:
                self.v5.count_dropped(self)
        dropped = self.session.dropped
        sys = self.broker.sys
        if sys is not None and dropped != self.reported:
            self.reported = dropped
            sys.put("connection/%s/dropped" % self.name, str(dropped))

    def stop(self) -> None:
        """The broker is stopping: say goodbye (the remote keeps a notification of 0)."""
        if self.state == UP:
            msg = self._notification(b"0")
            # (a 0 that cannot go out now: no DISCONNECT, so that the will says it)
            if msg is None or send_stored(self.broker, self.session, msg, msg.flags):
                conn = self.conn
                pos = reserve(self.broker, conn, 2, False)
                put_disconnect(conn.out, pos)
        self.must_close = True

    # ---- output ----

    def _connect(self) -> None:
        s = self.settings
        c = Connect()
        level = self.level
        c.protocol_name = "MQIsdp" if level == PROTOCOL_LEVEL_31 else "MQTT"
        # (mosquitto's bridge flag is for 3.1 and 3.1.1: v5 has No Local and Retain As
        # Published for what it meant)
        c.protocol_level = level | _PRIVATE if self.private and level != PROTOCOL_LEVEL_5\
            else level
        if s.cleansession:
            c.flags = CONNECT_FLAG_CLEAN_SESSION
        c.keepalive = s.keepalive_interval
        c.client_id = self.client_id
        if s.notifications and not s.notifications_local_only:
            c.will_topic = self.state_topic  # a will, at QoS 1, retained: the state 0
            c.will_payload = b"0"
            c.will_qos = 1
            c.will_retain = True
        if s.remote_username is not None:
            c.username = s.remote_username
            if s.remote_password is not None:
                c.password = s.remote_password.encode()
        props = self.v5.connect_properties(self) if level == PROTOCOL_LEVEL_5 else b""
        conn = self.conn
        pos = reserve(self.broker, conn, connect_size(c, props), False)
        put_connect(conn.out, pos, c, props)

    def _subscribe(self) -> None:
        if not self.in_rules:
            return
        v5 = self.level == PROTOCOL_LEVEL_5
        filters = [(t.remote_filter, self.v5.options(self, t.qos) if v5 else t.qos)
                   for f, t in self.in_rules]
        conn = self.conn
        pos = reserve(self.broker, conn, subscribe_size(filters, v5), False)
        self.sub_mid = self.session.slot_mid[0]
        put_subscribe(conn.out, pos, self.sub_mid, filters, v5)

    def _close(self, why: str) -> None:
        self.broker.log(LOG_NOTICE, "Bridge %s: %s, closing the connection." % (self.name, why))
        self.must_close = True

    def _backoff(self) -> int:
        """The wait before the next attempt, in ms: restart_timeout's constant, or mosquitto's
        "decorrelated jitter" between the base and three times the last wait, up to the cap."""
        s = self.settings
        base = s.restart_base * 1000
        if not s.restart_cap:
            return base
        self.seed = (self.seed * 1103515245 + 12345) & 0x3FFFFFFF
        hi = self.delay * 3
        wait = base + self.seed % (hi - base + 1) if hi > base else base
        if wait > s.restart_cap * 1000:
            wait = s.restart_cap * 1000
        self.delay = wait
        return wait

    # ---- messages going out ----

    def _from_local(self, topic: bytes, payload: "Any", qos: int, retain: bool) -> None:
        """The local side's on_message: a message for the remote broker."""
        if self.injecting:
            return
        remote = _translate(self.out_rules, topic, False)
        if remote is None:
            return
        if not self.settings.outgoing_retain:
            retain = False
        conn = self.session.conn  # (None while the link is not up)
        if qos == 0 and conn is None and not self.broker.config.queue_qos0_messages:
            self._drop()
            return
        if self.v5 is not None:
            self.v5.from_local(self, remote, payload, qos, retain)  # (payload: the Message)
            return
        data = remote + payload
        n = len(remote)
        if qos or conn is None:
            self._send(Message(data, n, qos, retain))
        elif not write_publish(self.broker, conn, 0x31 if retain else 0x30, 0, data, 0, n, n,
                               len(data), True):
            self._drop()  # past the output cap, as for a slow subscriber

    def _send(self, msg: Message) -> None:
        """msg goes out now if the link is up, the window and the output have room and nothing
        waits ahead of it; else it waits in the queue."""
        s = self.session
        if s.conn is None or s.queue or s.resend or not send_stored(self.broker, s, msg,
                                                                     msg.flags):
            self._enqueue(msg)

    def _drop(self) -> None:
        self.session.dropped += 1
        self.broker.messages_dropped += 1

    def _enqueue(self, msg: Message) -> None:
        s = self.session
        if s.enqueue(msg, msg.flags):
            return
        self.broker.messages_dropped += 1  # (and counted in s.dropped)
        if s.dropped == 1 or s.dropped % 1000 == 0:
            self.broker.log(LOG_WARNING, "Bridge %s: outgoing messages are being dropped"
                            " (bridge_max_queued_messages %d reached, %d dropped)."
                            % (self.name, s.max_queued, s.dropped))

    def _notification(self, state: bytes) -> "Optional[Message]":
        """The link's state for the remote broker, retained at QoS 1; None without one."""
        s = self.settings
        if not s.notifications or s.notifications_local_only:
            return None
        return Message(self.state_topic + state, len(self.state_topic), 1, True)

    # ---- packets from the remote broker ----

    def _packet(self, b0: int, buf: "Buffer", pos: int, end: int) -> None:
        t = b0 >> 4
        b = self.broker
        if b.log_mask & LOG_DEBUG:
            b.log(LOG_DEBUG, "Bridge %s received %s" % (self.name, PACKET_NAMES[t]))
        if self.state == WAIT_CONNACK:
            if t != CONNACK:
                raise MalformedPacket("%s before CONNACK" % PACKET_NAMES[t])
            if self.level == PROTOCOL_LEVEL_5:
                code = self.v5.connack(self, buf, pos, end)
            elif end - pos != 2:
                raise MalformedPacket("CONNACK remaining length must be 2")
            else:
                code = buf[pos + 1]
            self._connack(buf[pos] & 1, code)
        elif t == PUBLISH:
            self._incoming(b0, buf, pos, end)
        elif t == PUBACK or t == PUBREC or t == PUBREL or t == PUBCOMP:
            if end - pos > 2 and self.level == PROTOCOL_LEVEL_5:
                self.v5.acknowledged(self, t, buf, pos)
            # the acknowledgements of what went out, as a client's
            handle_acknowledgement(b, self.conn, t, buf, pos, end)
        elif t == SUBACK:
            self._suback(buf, pos, end)
        elif t == DISCONNECT and self.level == PROTOCOL_LEVEL_5:
            self._close(self.v5.disconnected(buf, pos, end))
        elif t != PINGRESP:
            raise MalformedPacket("%s is not sent to clients" % PACKET_NAMES[t])

    def _connack(self, session_present: int, code: int) -> None:
        if code != 0:
            reason = _CONNACK_REASONS[code] if code < len(_CONNACK_REASONS) else "0x%02x" % code
            if code == CONNACK_UNACCEPTABLE_PROTOCOL_VERSION and self.level == PROTOCOL_LEVEL_5:
                # a 3.1.1 broker: connect as its client, as mosquitto's v5 bridge does
                self.level = PROTOCOL_LEVEL_311
                self.retry_now = True
                self._close("the remote broker does not support MQTT 5.0, retrying with 3.1.1")
            elif code == CONNACK_UNACCEPTABLE_PROTOCOL_VERSION and self.private:
                # Not every broker knows mosquitto's bridge flag: connect as a plain client.
                self.private = False
                self.retry_now = True
                self._close("the remote broker refused the bridge protocol level (try_private),"
                            " retrying without it")
            else:
                self._close("connection refused (%s)" % reason)
            return
        self.state = UP
        self.delay = self.settings.restart_base * 1000
        s = self.session
        if not s.slot_state:
            # The first connection: slot 0 of the window becomes the SUBSCRIBE's for good, so
            # that no PUBLISH takes its packet identifier [MQTT-2.3.1-2].
            s.take_slot(Message(b"", 0, 1, False), 1)
            s.forget_message(0)
            s.slot_state[0] = _SUBSCRIBING
        if not session_present or self.settings.cleansession:
            s.qos2_in = None  # the remote broker has no QoS 2 exchange to finish with us
        self.broker.log(LOG_NOTICE, "Bridge %s connected (%s:%d as %s)."
                        % ((self.name,) + self.address() + (self.client_id,)))
        conn = self.conn
        conn.state = CONNECTED
        conn.session = s
        s.conn = conn
        # What was in flight goes out again, in its original order [MQTT-4.4.0-1]
        # [MQTT-4.6.0-1], after the notification and the SUBSCRIBE (as mosquitto's bridges
        # do), then the queue.
        s.resend = s.inflight_order()
        self._notify_local(b"1")
        msg = self._notification(b"1")
        if msg is not None and not send_stored(self.broker, s, msg, msg.flags):
            self._enqueue(msg)
        self._subscribe()
        pump(self.broker, s)

    def _suback(self, buf: "Buffer", pos: int, end: int) -> None:
        if end - pos < 3:
            raise MalformedPacket("SUBACK without return codes")
        if ((buf[pos] << 8) | buf[pos + 1]) != self.sub_mid:
            return
        self.sub_mid = 0
        i = pos + 2
        if self.level == PROTOCOL_LEVEL_5:
            i = self.v5.suback_codes(buf, i, end)
        for f, t in self.in_rules:
            if i < end and buf[i] >= SUBACK_FAILURE:  # (v5: a Reason Code of 0x80 or more)
                self.broker.log(LOG_WARNING, "Bridge %s: the remote broker refused the"
                                " subscription to '%s' (0x%02x)."
                                % (self.name, str(t.remote_filter, "utf-8"), buf[i]))
            i += 1

    def _incoming(self, b0: int, buf: "Buffer", pos: int, end: int) -> None:
        v = self.broker.pub  # (the engine's view: the bridge's feed is never inside a client's)
        parse_publish(v, b0, buf, pos, end)
        qos = v.qos
        mid = v.mid
        if qos and mid == 0:
            raise MalformedPacket("packet identifier 0")  # [MQTT-2.3.1-1]
        props = b""
        expires = -1
        if self.level == PROTOCOL_LEVEL_5:
            props, expires = self.v5.publish_in(self, buf, end)
        b = self.broker
        s = self.session
        q2 = s.qos2_in
        if qos == 2 and q2 is not None and mid in q2:
            send_ack(b, self.conn, PUBREC, mid)  # a re-sent PUBLISH: routed once only
            return
        if not self._route_in(b0, buf, v.topic_start, v.topic_end, v.payload_start,
                              v.payload_end, props, expires):
            # no room to keep it here: unacknowledged, the remote broker sends it again
            log_limited(b, LIMIT_MEMORY, LOG_WARNING, "Bridge %s: no room to keep an incoming"
                        " message, reconnecting." % self.name)
            self.must_close = True
            return
        if qos == 1:
            send_ack(b, self.conn, PUBACK, mid)
        elif qos == 2:
            # its identifier kept until its PUBREL (handle_pubrel), as a client's is, within
            # the session's bound (max_inflight_messages and max_queued_messages of them)
            s.qos2_received(mid)
            send_ack(b, self.conn, PUBREC, mid)

    def _route_in(self, b0: int, buf: "Buffer", ts: int, te: int, ps: int, pe: int,
                  props: bytes, expires: int) -> bool:
        """Route an incoming message locally, with the MQTT 5 properties forwarded and its
        expiry (broker.bridge5.publish_in); False when there is no room to keep it."""
        if not valid_topic_name(buf, ts, te):
            raise MalformedPacket("invalid topic name")  # [MQTT-1.5.3-1] [MQTT-3.3.2-2]
        topic = bytes(buf[ts:te])
        local = _translate(self.in_rules, topic, True)
        if local is None:
            return True  # not ours (an old subscription of a persistent session)
        b = self.broker
        if len(local) > b.config.max_topic_length:
            b.log(LOG_WARNING, "Bridge %s: dropped a message whose topic is longer than"
                  " max_topic_length here (%d bytes)." % (self.name, len(local)))
            return True
        b.messages_received += 1
        msg = Message(local + props + bytes(buf[ps:pe]), len(local), (b0 >> 1) & 3,
                      bool(b0 & 1) and b.config.retain_available)
        if props:
            msg.plen = len(props)
        if expires >= 0:
            msg.expires = expires
        return self._inject(msg)

    def _inject(self, msg: Message) -> bool:
        self.injecting = True
        try:
            return publish_message(self.broker, msg)
        finally:
            self.injecting = False

    def _notify_local(self, state: bytes) -> None:
        if self.settings.notifications:
            t = self.state_topic
            self._inject(Message(t + state, len(t), 1, self.broker.config.retain_available))


def _translate(rules: "List[Tuple[Filter, TopicRule]]", topic: bytes,
               inbound: bool) -> "Optional[bytes]":
    """topic as the other side names it, by the first rule that matches it (its prefix swapped
    for the other side's); None when no rule does."""
    for f, t in rules:
        if inbound:
            src = t.remote_prefix
            dst = t.local_prefix
        else:
            src = t.local_prefix
            dst = t.remote_prefix
        if topic.startswith(src) and filter_matches(f, topic, 0, len(topic)):
            n = len(src)
            return dst + topic[n:] if n or dst else topic
    return None
