"""A bridge: this broker as an MQTT 3.1.1 client of a remote broker (mosquitto's `connection`).

Sans-I/O like the engine. The port opens a TCP connection when due() says so, reports it with
opened() or lost(), hands over the bytes it reads (feed) and the clock (tick), and writes out
`out[ooff:olen]`; when `must_close` is set it closes the socket and calls lost(). Imported only
when the configuration has a bridge.

The local side is an in-process client (broker.local) subscribed to the `out` topics, which
receives messages with the RETAIN flag they were published with. Outgoing QoS 1 and 2 messages
wait in a bounded queue while the link is down and go out in order, at most
max_inflight_messages at a time; each stays in flight until the remote broker acknowledges it
(PUBACK, or PUBREC then PUBCOMP) and is sent again, DUP set, after a reconnection
[MQTT-4.4.0-1]. An incoming PUBLISH is routed locally before it is acknowledged. Messages the
bridge itself publishes locally are never sent back out on it ("no local").
"""
from broker.bridge_settings import IN, OUT
from broker.codec import (
    Connect, MalformedPacket, Publish, Reader, connect_size, parse_publish, publish_size, put_ack,
    put_connect, put_disconnect, put_pingreq, put_publish, put_subscribe, subscribe_size,
)
from broker.const import (
    CONNACK, CONNECT_FLAG_CLEAN_SESSION, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL,
    SUBACK, SUBACK_FAILURE, CONNACK_UNACCEPTABLE_PROTOCOL_VERSION, LOG_DEBUG, LOG_ERR,
    LOG_NOTICE, LOG_WARNING, PACKET_NAMES, PROTOCOL_LEVEL_31, const,
)
from broker.keepalive import ticks_diff
from broker.lifecycle import LIMIT_MEMORY
from broker.local import LocalClient
from broker.session import (
    AWAIT_PUBACK, AWAIT_PUBCOMP, AWAIT_PUBREC, FLAG_QOS_MASK, FLAG_RETAIN, Message,
)
from broker.topics import Filter, filter_matches, valid_topic_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Set, Tuple, Union
    from broker.bridge_settings import BridgeSettings, TopicRule
    from broker.engine import Broker
    Buffer = Union[bytes, bytearray]

# Link states.
IDLE = const(0)          # waiting until the next attempt
CONNECTING = const(1)    # the port is opening the TCP connection
WAIT_CONNACK = const(2)  # CONNECT sent
UP = const(3)

_PRIVATE = const(0x80)  # protocol level bit that tells mosquitto "a bridge" (try_private)
_CONNACK_REASONS = ("accepted", "unacceptable protocol version", "identifier rejected",
                    "server unavailable", "bad user name or password", "not authorised")


class Bridge:
    state = IDLE
    must_close = False
    ooff = 0
    olen = 0
    injecting = False  # routing one of our own messages locally: do not send it back
    retry_now = False
    address_index = 0
    dropped = 0
    reported = 0
    next_mid = 0
    sub_mid = 0

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
        self.max_queued = settings.max_queued_messages or cfg.max_queued_messages
        self.window = cfg.max_inflight_messages
        self.keepalive_ms = settings.keepalive_interval * 1000
        self.private = settings.try_private
        self.delay = settings.restart_base * 1000
        now = broker.now
        self.next_attempt = now
        self.since = now
        self.last_rx = now
        self.last_tx = now
        self.seed = (now ^ len(self.client_id) * 2654435) & 0x3FFFFFFF
        self.out = bytearray(0)
        self.reader = Reader(cfg.max_packet_size)
        self.pub = Publish()
        self.queue = []  # type: List[Message]
        self.inflight = {}  # type: Dict[int, List[Any]]  # mid -> [state, Message or None]
        self.order = []  # type: List[int]  # in-flight identifiers, oldest first
        self.qos2_in = set()  # type: Set[int]
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
        host, port = self.address()
        self.broker.log(LOG_NOTICE, "Connecting bridge %s (%s:%d)" % (self.name, host, port))

    def opened(self, now: int) -> None:
        """The TCP connection is up: send CONNECT."""
        self.state = WAIT_CONNACK
        self.since = now
        self.last_rx = now
        self.reader.reset()
        self._connect()

    def lost(self, now: int, reason: str = "") -> None:
        """The connection failed or was closed (also after must_close): retry later."""
        if self.state == IDLE:
            return
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
        self.ooff = self.olen = 0
        self.reader.reset()
        if self.retry_now:
            self.retry_now = False
            self.next_attempt = now
        else:
            self.next_attempt = (now + self._backoff()) & 0x3FFFFFFF

    def feed(self, buf: "Buffer", n: int) -> None:
        """Bytes buf[0:n] arrived from the remote broker."""
        reader = self.reader
        pos = 0
        try:
            while pos < n and not self.must_close:
                pos = reader.take(buf, pos, n)
                if reader.ready:
                    self.last_rx = self.broker.now
                    self._packet(reader.b0, reader.buf, reader.start, reader.end)
                    reader.release()
        except MalformedPacket as e:
            self._close("the remote broker sent a malformed packet: %s" % e)
        except MemoryError:
            reader.reset()
            self._close("out of memory")
        except Exception as e:  # a defect here must cost the link, never the broker
            self.broker.log(LOG_ERR, "Bridge %s: internal error: %r" % (self.name, e))
            self._close("internal error")

    def tick(self, now: int) -> None:
        """Keepalive [MQTT-3.1.2-23] and the time allowed to connect; the dropped count."""
        if self.state == CONNECTING or self.state == WAIT_CONNACK:
            if ticks_diff(now, self.since) > self.keepalive_ms:
                self._close("no answer within keepalive_interval")
        elif self.state == UP:
            if ticks_diff(now, self.last_rx) > self.keepalive_ms + self.keepalive_ms // 2:
                self._close("the remote broker stopped answering")
            elif ticks_diff(now, self.last_tx) >= self.keepalive_ms:
                pos = self._reserve(2, False)
                put_pingreq(self.out, pos)
        sys = self.broker.sys
        if sys is not None and self.dropped != self.reported:
            self.reported = self.dropped
            sys.put("connection/%s/dropped" % self.name, str(self.dropped))

    def pending(self) -> int:
        return self.olen - self.ooff

    def sent(self, n: int) -> None:
        """The port wrote n bytes of out[ooff:olen]."""
        self.ooff += n
        if self.ooff >= self.olen:
            self.ooff = self.olen = 0

    def stop(self) -> None:
        """The broker is stopping: say goodbye (the remote keeps a notification of 0)."""
        if self.state == UP:
            if self.settings.notifications and not self.settings.notifications_local_only:
                self._send_new(Message(self.state_topic + b"0", len(self.state_topic), 1, True))
            pos = self._reserve(2, False)
            put_disconnect(self.out, pos)
        self.must_close = True

    # ---- output ----

    def _reserve(self, n: int, optional: bool) -> int:
        """Room for n more bytes of output; the offset to write at, or -1 (optional output
        past the broker's soft cap: a QoS 0 message the link cannot take now)."""
        if optional and self.olen - self.ooff + n > self.broker.out_soft:
            return -1
        out = self.out
        end = self.olen + n
        if end > len(out):
            k = self.olen - self.ooff
            size = len(out) or 256
            while size < k + n:
                size *= 2
            grown = bytearray(size)
            grown[0:k] = out[self.ooff:self.olen]
            self.out = grown
            self.ooff = 0
            self.olen = k
            end = k + n
        pos = self.olen
        self.olen = end
        self.last_tx = self.broker.now
        return pos

    def _ack(self, packet_type: int, mid: int) -> None:
        pos = self._reserve(4, False)
        put_ack(self.out, pos, (packet_type << 4) | (2 if packet_type == PUBREL else 0), mid)

    def _publish_qos0(self, retain: bool, topic: bytes, payload: bytes) -> bool:
        """Past the output cap a QoS 0 message is dropped (False), as for a slow subscriber."""
        b0 = 0x31 if retain else 0x30
        pos = self._reserve(publish_size(b0, len(topic), len(payload)), True)
        if pos < 0:
            return False
        data = topic + payload
        put_publish(self.out, pos, b0, 0, data, 0, len(topic), len(topic), len(data))
        return True

    def _send_stored(self, b0: int, mid: int, msg: Message) -> None:
        data = msg.data
        tlen = msg.tlen
        pos = self._reserve(publish_size(b0, tlen, len(data) - tlen), False)
        put_publish(self.out, pos, b0, mid, data, 0, tlen, tlen, len(data))

    def _connect(self) -> None:
        s = self.settings
        c = Connect()
        level = s.protocol_level
        c.protocol_name = "MQIsdp" if level == PROTOCOL_LEVEL_31 else "MQTT"
        c.protocol_level = level | _PRIVATE if self.private else level
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
        pos = self._reserve(connect_size(c), False)
        put_connect(self.out, pos, c)

    def _subscribe(self) -> None:
        if not self.in_rules:
            return
        filters = [(t.remote_filter, t.qos) for f, t in self.in_rules]
        pos = self._reserve(subscribe_size(filters), False)
        self.sub_mid = self._mid()
        put_subscribe(self.out, pos, self.sub_mid, filters)

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

    def _mid(self) -> int:
        mid = self.next_mid
        while True:
            mid = mid + 1 if mid < 65535 else 1
            if mid not in self.inflight and mid != self.sub_mid:
                self.next_mid = mid
                return mid

    # ---- messages going out ----

    def _from_local(self, topic: bytes, payload: bytes, qos: int, retain: bool) -> None:
        """The local side's on_message: a message for the remote broker."""
        if self.injecting:
            return
        remote = _translate(self.out_rules, topic, False)
        if remote is None:
            return
        if not self.settings.outgoing_retain:
            retain = False
        if qos == 0:
            if self.state == UP:
                if self._publish_qos0(retain, remote, payload):
                    return
            elif self.broker.config.queue_qos0_messages:
                self._enqueue(Message(remote + payload, len(remote), 0, retain))
                return
            self._drop()
            return
        msg = Message(remote + payload, len(remote), qos, retain)
        if self.state == UP and not self.queue and len(self.inflight) < self.window:
            self._send_new(msg)
        else:
            self._enqueue(msg)

    def _drop(self) -> None:
        self.dropped += 1
        self.broker.messages_dropped += 1

    def _enqueue(self, msg: Message) -> None:
        if len(self.queue) < self.max_queued:
            self.queue.append(msg)
            return
        self._drop()
        if self.dropped == 1 or self.dropped % 1000 == 0:
            self.broker.log(LOG_WARNING, "Bridge %s: outgoing messages are being dropped"
                            " (bridge_max_queued_messages %d reached, %d dropped)."
                            % (self.name, self.max_queued, self.dropped))

    def _send_new(self, msg: Message) -> None:
        qos = msg.flags & FLAG_QOS_MASK
        if qos == 0:
            self._send_stored(0x31 if msg.flags & FLAG_RETAIN else 0x30, 0, msg)
            return
        mid = self._mid()
        self.inflight[mid] = [AWAIT_PUBACK if qos == 1 else AWAIT_PUBREC, msg]
        self.order.append(mid)
        self._send_stored(_b0(0x30, msg), mid, msg)

    def _pump(self) -> None:
        queue = self.queue
        while queue and self.state == UP and len(self.inflight) < self.window:
            self._send_new(queue.pop(0))

    def _finish(self, mid: int) -> None:
        del self.inflight[mid]
        self.order.remove(mid)
        self._pump()

    # ---- packets from the remote broker ----

    def _packet(self, b0: int, buf: "Buffer", pos: int, end: int) -> None:
        t = b0 >> 4
        if self.broker.log_mask & LOG_DEBUG:
            self.broker.log(LOG_DEBUG, "Bridge %s received %s" % (self.name, PACKET_NAMES[t]))
        if self.state == WAIT_CONNACK:
            if t != CONNACK or end - pos != 2:
                raise MalformedPacket("%s before CONNACK" % PACKET_NAMES[t])
            self._connack(buf[pos] & 1, buf[pos + 1])
        elif t == PUBLISH:
            self._incoming(b0, buf, pos, end)
        elif t == PUBACK or t == PUBREC or t == PUBREL or t == PUBCOMP:
            if end - pos != 2:
                raise MalformedPacket("%s remaining length must be 2" % PACKET_NAMES[t])
            self._acked(t, (buf[pos] << 8) | buf[pos + 1])
        elif t == SUBACK:
            self._suback(buf, pos, end)
        elif t != PINGRESP:
            raise MalformedPacket("%s is not sent to clients" % PACKET_NAMES[t])

    def _connack(self, session_present: int, code: int) -> None:
        if code != 0:
            reason = _CONNACK_REASONS[code] if code < len(_CONNACK_REASONS) else "code %d" % code
            if code == CONNACK_UNACCEPTABLE_PROTOCOL_VERSION and self.private:
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
        if not session_present or self.settings.cleansession:
            self.qos2_in = set()  # the remote broker has no QoS 2 exchange to finish with us
        self.broker.log(LOG_NOTICE, "Bridge %s connected (%s:%d as %s)."
                        % ((self.name,) + self.address() + (self.client_id,)))
        for mid in self.order:  # in their original order [MQTT-4.4.0-1] [MQTT-4.6.0-1]
            e = self.inflight[mid]
            msg = e[1]
            if e[0] == AWAIT_PUBCOMP or msg is None:
                self._ack(PUBREL, mid)
            else:
                self._send_stored(_b0(0x38, msg), mid, msg)
        if self.settings.notifications:
            self._notify_local(b"1")
            if not self.settings.notifications_local_only:
                self._send_new(Message(self.state_topic + b"1", len(self.state_topic), 1, True))
        self._subscribe()
        self._pump()

    def _acked(self, t: int, mid: int) -> None:
        if t == PUBREL:
            self.qos2_in.discard(mid)
            self._ack(PUBCOMP, mid)  # [MQTT-4.3.3-2]
            return
        e = self.inflight.get(mid)
        if e is None:
            return
        if t == PUBACK:
            if e[0] == AWAIT_PUBACK:
                self._finish(mid)
        elif t == PUBREC:
            if e[0] == AWAIT_PUBREC:
                e[0] = AWAIT_PUBCOMP
                e[1] = None  # delivered: only the identifier is kept
            if e[0] == AWAIT_PUBCOMP:
                self._ack(PUBREL, mid)  # [MQTT-4.3.3-1]
        elif e[0] == AWAIT_PUBCOMP:
            self._finish(mid)

    def _suback(self, buf: "Buffer", pos: int, end: int) -> None:
        if end - pos < 3:
            raise MalformedPacket("SUBACK without return codes")
        if ((buf[pos] << 8) | buf[pos + 1]) != self.sub_mid:
            return
        self.sub_mid = 0
        i = pos + 2
        for f, t in self.in_rules:
            if i < end and buf[i] == SUBACK_FAILURE:
                self.broker.log(LOG_WARNING, "Bridge %s: the remote broker refused the"
                                " subscription to '%s'." % (self.name,
                                                            str(t.remote_filter, "utf-8")))
            i += 1

    def _incoming(self, b0: int, buf: "Buffer", pos: int, end: int) -> None:
        v = self.pub
        parse_publish(v, b0, buf, pos, end)
        qos = v.qos
        mid = v.mid
        if qos and mid == 0:
            raise MalformedPacket("packet identifier 0")  # [MQTT-2.3.1-1]
        if qos == 2 and mid in self.qos2_in:
            self._ack(PUBREC, mid)  # a re-sent PUBLISH: routed once only
            return
        if not self._route_in(b0, buf, v.topic_start, v.topic_end, v.payload_start,
                              v.payload_end):
            # no room to keep it here: unacknowledged, the remote broker sends it again
            self.broker.log_limited(LIMIT_MEMORY, LOG_WARNING, "Bridge %s: no room to keep an"
                                    " incoming message, reconnecting." % self.name)
            self.must_close = True
            return
        if qos == 1:
            self._ack(PUBACK, mid)
        elif qos == 2:
            self.qos2_in.add(mid)
            self._ack(PUBREC, mid)

    def _route_in(self, b0: int, buf: "Buffer", ts: int, te: int, ps: int, pe: int) -> bool:
        """Route an incoming message locally; False when there is no room to keep it."""
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
        return self._inject(local, bytes(buf[ps:pe]), (b0 >> 1) & 3,
                            bool(b0 & 1) and b.config.retain_available)

    def _inject(self, topic: bytes, payload: bytes, qos: int, retain: bool) -> bool:
        self.injecting = True
        try:
            return self.broker.publish(topic, payload, qos, retain)
        finally:
            self.injecting = False

    def _notify_local(self, state: bytes) -> None:
        if self.settings.notifications:
            self._inject(self.state_topic, state, 1, self.broker.config.retain_available)


def _b0(base: int, msg: Message) -> int:
    """A PUBLISH's first byte for msg: base (0x30, or 0x38 with DUP) with its QoS and RETAIN."""
    return base | ((msg.flags & FLAG_QOS_MASK) << 1) | (1 if msg.flags & FLAG_RETAIN else 0)


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
