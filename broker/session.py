"""Per-client session state: the outgoing in-flight window, the bounded queue, packet identifiers.

A session outlives its connection when the client asked for CleanSession 0 [MQTT-3.1.2-4].
"""
from broker.bytesops import const, copy_into, micropython


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional, Set, Union
    Buffer = Union[bytes, bytearray]

# In-flight slot states (outgoing QoS 1 and 2, section 4.3).
_FREE = const(0)
AWAIT_PUBACK = const(1)
AWAIT_PUBREC = const(2)
AWAIT_PUBCOMP = const(3)

# What qos2_received() found.
QOS2_NEW = const(0)
QOS2_RESENT = const(1)
QOS2_FULL = const(2)

# Delivery flags kept with a queued or in-flight message: the QoS to send at, and RETAIN for
# retained messages sent because of a new subscription [MQTT-3.3.1-8].
FLAG_QOS_MASK = const(0x03)
FLAG_RETAIN = const(0x04)


# What a kept message costs besides its bytes: the Message and its bytearray objects (64-bit
# MicroPython; a board needs about half).
MESSAGE_OVERHEAD = const(128)


class Ledger:
    """The bytes of the application messages the broker keeps (retained, queued, in flight,
    wills), each message counted once however many tables hold it, with MESSAGE_OVERHEAD, and
    the limits on them: `limit` for all (memory_limit), `queue_limit` for one session's queue
    (max_queued_bytes), 0 for none. Every table that keeps a message holds a reference through
    hold() and lets it go through release()."""

    # with persistence on, what changed since the last save (broker.persist.Changes), marked
    # by the tables that keep messages; None: nothing is saved
    changes = None  # type: Any

    def __init__(self, limit: int = 0, queue_limit: int = 0) -> None:
        self.bytes = 0
        self.messages = 0
        self.limit = limit
        self.queue_limit = queue_limit

    def hold(self, m: "Message") -> None:
        if m.refs == 0:
            self.bytes += len(m.data) + MESSAGE_OVERHEAD
            self.messages += 1
        m.refs += 1

    def release(self, m: "Message") -> None:
        m.refs -= 1
        if m.refs == 0:
            self.bytes -= len(m.data) + MESSAGE_OVERHEAD
            self.messages -= 1


class Message:
    """An application message that has to be kept: retained, queued, in flight, or a will.
    `data` holds the topic, the MQTT 5 properties forwarded with it (plen bytes, none for a
    3.1.1 publisher) and the payload, so one buffer and a few offsets describe it. `expires`:
    Broker.seconds when its Message Expiry Interval runs out, -1 for never."""

    plen = 0
    expires = -1

    def __init__(self, data: "Buffer", tlen: int, qos: int, retain: bool) -> None:
        self.data = data
        self.tlen = tlen
        # QoS and RETAIN in one field (FLAG_QOS_MASK, FLAG_RETAIN, as a delivery's flags), so
        # that the reference count (Ledger) keeps a Message at four fields: MicroPython gives a
        # fifth a larger table (32 bytes more per message on a 64-bit build, 16 on a board)
        self.flags = qos | (FLAG_RETAIN if retain else 0)
        self.refs = 0

    def topic(self) -> bytes:
        return bytes(self.data[:self.tlen])

    def payload(self) -> bytes:
        return bytes(self.data[self.tlen + self.plen:])


@micropython.native
def message_from(buf: "Buffer", ts: int, te: int, pps: int, ps: int, pe: int, qos: int,
                 retain: bool) -> Message:
    """The message of topic buf[ts:te], properties buf[pps:ps] and payload buf[ps:pe]."""
    tlen = te - ts
    data = bytearray(tlen + pe - pps)
    copy_into(data, 0, buf, ts, tlen)
    copy_into(data, tlen, buf, pps, pe - pps)
    m = Message(data, tlen, qos, retain)
    if ps > pps:
        m.plen = ps - pps
    return m


class Session:
    """Packet identifiers are tied to slots: slot i of n only ever uses identifiers congruent to
    i + 1 modulo n, so an identifier is never reused while its slot is busy [MQTT-2.3.1-2] and an
    acknowledgement finds its slot without a search. Slots are allocated on first QoS > 0 use."""

    # Defaults on the class (docs/design.md); the window
    # arrays, the queue and the QoS 2 set are created on first use, so an idle QoS 0 client
    # costs little more than its client id. The empty tuples stand for "not allocated yet":
    # they are replaced by lists before anything is stored, never written to.
    route_mark = 0
    route_qos = 0
    inflight = 0
    seq = 0
    cursor = 0
    dropped = 0
    seen = 0  # Broker.seconds when its client was last connected (offline sessions)
    # MQTT 5: the Session Expiry Interval (s) once its client is gone, -1 for the
    # configuration's (persistent_client_expiration); the client's Receive Maximum
    expiry = -1
    window = 65535
    # MQTT 5: the will of a client gone, waiting out its Will Delay Interval until Broker.seconds
    # reaches will_at (with its Message Expiry Interval, -1: none) [MQTT-3.1.3-9]
    will = None  # type: Optional[Message]
    will_at = 0
    will_expiry = -1
    slot_mid = ()  # type: List[int]  # type: ignore[assignment]
    slot_state = ()  # type: List[int]  # type: ignore[assignment]
    slot_flags = ()  # type: List[int]  # type: ignore[assignment]
    slot_seq = ()  # type: List[int]  # type: ignore[assignment]
    slot_msg = ()  # type: List[Optional[Message]]  # type: ignore[assignment]
    queue = ()  # type: List[Message]  # type: ignore[assignment]
    queue_flags = ()  # type: List[int]  # type: ignore[assignment]
    queued_bytes = 0  # topic and payload bytes in the queue (max_queued_bytes)
    # In-flight slots to send again, in their first order, that the output could not take yet
    # when the session resumed (broker.handle_connect.resume); the queue waits behind them.
    resend = ()  # type: List[int]  # type: ignore[assignment]
    qos2_in = None  # type: Optional[Set[int]]
    acl = None  # type: Any  # with an acl_file: this client's rules (broker.acl.rules_for)
    local = None  # type: Any  # an in-process client (broker.local.LocalClient) owns this session

    def __init__(self, client_id: str, clean: bool, max_inflight: int, max_queued: int,
                 ledger: Ledger) -> None:
        self.client_id = client_id
        self.clean = clean
        self.conn = None  # type: Any
        self.size = max_inflight
        self.max_queued = max_queued
        self.ledger = ledger

    def _allocate(self) -> None:
        n = self.size
        self.slot_mid = [i + 1 - n for i in range(n)]
        self.slot_state = [_FREE] * n
        self.slot_flags = [0] * n
        self.slot_seq = [0] * n
        self.slot_msg = [None] * n

    def window_open(self) -> bool:
        return self.inflight < self.size and self.inflight < self.window

    def take_slot(self, msg: Message, flags: int) -> int:
        """Reserve a free slot for msg (the window must be open); return the slot index."""
        if not self.slot_state:
            self._allocate()
        n = self.size
        i = self.cursor
        state = self.slot_state
        while state[i] != _FREE:
            i += 1
            if i == n:
                i = 0
        self.cursor = i + 1 if i + 1 < n else 0
        mid = self.slot_mid[i] + n
        if mid > 65535:
            mid = i + 1
        self.slot_mid[i] = mid
        state[i] = AWAIT_PUBACK if flags & FLAG_QOS_MASK == 1 else AWAIT_PUBREC
        self.slot_flags[i] = flags
        self.ledger.hold(msg)
        self.slot_msg[i] = msg
        self.seq += 1
        self.slot_seq[i] = self.seq
        self.inflight += 1
        if self.ledger.changes is not None:  # persistence on: saved at its next save point
            self.ledger.changes.session(self)
        return i

    def find_slot(self, mid: int, state: int) -> int:
        """The slot of the in-flight message with this identifier and state, or -1."""
        if not self.slot_state or mid == 0:
            return -1
        i = (mid - 1) % self.size
        if self.slot_mid[i] == mid and self.slot_state[i] == state:
            return i
        return -1

    def release_slot(self, i: int) -> None:
        self.slot_state[i] = _FREE
        self.forget_message(i)
        self.inflight -= 1

    def forget_message(self, i: int) -> None:
        """Slot i no longer needs its message (delivered: QoS 2 keeps only its identifier)."""
        msg = self.slot_msg[i]
        if msg is not None:
            self.slot_msg[i] = None
            self.ledger.release(msg)
        if self.ledger.changes is not None:  # (and release_slot's change of state)
            self.ledger.changes.session(self)

    def inflight_order(self) -> "List[int]":
        """Busy slots in the order their messages were first sent [MQTT-4.6.0-1]."""
        busy = [i for i in range(len(self.slot_state)) if self.slot_state[i] != _FREE]
        busy.sort(key=lambda i: self.slot_seq[i])
        return busy

    def enqueue(self, msg: Message, flags: int) -> bool:
        """Queue msg; False (and counted as dropped) past max_queued_messages or
        max_queued_bytes."""
        n = len(msg.data)
        limit = self.ledger.queue_limit
        if len(self.queue) >= self.max_queued or (limit and self.queued_bytes + n > limit):
            self.dropped += 1
            return False
        if not self.queue_flags:
            self.queue = []
            self.queue_flags = []
        self.ledger.hold(msg)
        self.queue.append(msg)
        self.queue_flags.append(flags)
        self.queued_bytes += n
        if self.ledger.changes is not None:
            self.ledger.changes.session(self)
        return True

    def unqueue(self, i: int) -> None:
        """Take the i-th queued message out of the queue (sent, or dropped)."""
        msg = self.queue.pop(i)
        self.queue_flags.pop(i)
        self.queued_bytes -= len(msg.data)
        self.ledger.release(msg)
        if self.ledger.changes is not None:
            self.ledger.changes.session(self)

    def qos2_received(self, mid: int) -> int:
        """Note an incoming QoS 2 packet identifier: QOS2_NEW, QOS2_RESENT if it was already
        awaiting PUBREL, or QOS2_FULL when the client holds as many unreleased as this session
        may hold messages for it (max_inflight_messages + max_queued_messages)."""
        q2 = self.qos2_in
        if q2 is None:
            q2 = self.qos2_in = set()
        elif mid in q2:
            return QOS2_RESENT
        elif len(q2) >= self.size + self.max_queued:
            return QOS2_FULL
        q2.add(mid)
        if self.ledger.changes is not None:
            self.ledger.changes.session(self)
        return QOS2_NEW

    def qos2_released(self, mid: int) -> bool:
        """Forget mid; False when it was not awaiting PUBREL."""
        q2 = self.qos2_in
        if q2 is None or mid not in q2:
            return False
        q2.remove(mid)
        if self.ledger.changes is not None:
            self.ledger.changes.session(self)
        return True

    def clear(self) -> None:
        """Let go of every message the session holds (it ends)."""
        for i in range(len(self.slot_state)):
            if self.slot_state[i] != _FREE:
                self.release_slot(i)
        while self.queue:
            self.unqueue(len(self.queue) - 1)
        if self.resend:
            del self.resend[:]
