"""The $SYS/broker/... topics mosquitto publishes, every sys_interval seconds.

Imported only when sys_interval is above 0. Values are kept here, not in the retained table, so
that they never take a user's retained slot; a new subscription gets them with RETAIN set, like
retained messages, and a value is published again only when it changed (as mosquitto does).

An interval allocates only for the values that changed: each value's number is compared with
the one last published before any text is made. A board collects garbage as it goes, but the
heap an interval needs at once is what decides the smallest heap that runs $SYS (the 32-bit
test port collects only between two events: every byte made here counts).
"""
import math

from broker import VERSION
from broker.bytesops import MPY
from broker.keepalive import T_CONNECTIONS
from broker.session import Message
from broker.topics import filter_matches_in_place

if MPY:
    import gc  # mem_alloc/mem_free: on a board the heap is worth watching

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional
    from broker.engine import Broker

_LOADS = ("1min", "5min", "15min")
_PERIODS = (60.0, 300.0, 900.0)

# Topics under $SYS/broker/load/, in the order of Broker.totals.
_RATES = (
    "messages/received", "messages/sent", "bytes/received", "bytes/sent",
    "publish/received", "publish/sent", "publish/dropped", "connections",
)

# The values with a slot of their own, in this order; then the loads, _RATES by _LOADS.
_NAMES = (
    "version", "uptime", "clients/connected", "clients/disconnected", "clients/maximum",
    "clients/total", "clients/expired", "clients/evicted", "messages/received", "messages/sent",
    "bytes/received", "bytes/sent", "publish/messages/received", "publish/messages/sent",
    "publish/messages/dropped", "retained messages/count", "subscriptions/count",
    "heap/current", "heap/free",
)
_UPTIME = 1
_TOTALS = 8  # the slot of Broker.totals[0], "messages/received"
_HEAP = 17
_LOAD = len(_NAMES)


class SysTopics:
    def __init__(self, broker: "Broker", interval_s: int) -> None:
        self.broker = broker
        self.interval_ms = interval_s * 1000
        self.last = 0
        self.uptime_ms = 0
        n = _LOAD + len(_RATES) * len(_LOADS)
        self.values = [None] * n  # type: List[Optional[Message]]
        self.shown = [-1] * n  # type: List[int]  # the number each value was made from
        self.extra = {}  # type: Dict[str, Message]  # put(): a bridge's values
        self.counts = [0] * len(_RATES)
        self.loads = [0.0] * (len(_RATES) * len(_LOADS))
        # the values exist from the start, so that a subscriber in the first interval gets
        # them at once, as later ones do
        self.publish_all(interval_s)

    def tick(self, elapsed_ms: int) -> None:
        """Called with the time since the previous call; publishes when an interval is over."""
        self.uptime_ms += elapsed_ms
        self.last += elapsed_ms
        if self.last < self.interval_ms:
            return
        interval_s = self.last / 1000.0
        self.last = 0
        self.publish_all(interval_s)

    def _set(self, i: int, number: int, text: str = "%d") -> None:
        """Value slot i, made from number (a load: in hundredths) as text % number; published
        if the number changed."""
        if self.shown[i] == number:
            return
        self.shown[i] = number
        if i < _LOAD:
            self._publish(_NAMES[i], text % number, i)
        else:
            k = i - _LOAD
            self._publish("load/%s/%s" % (_RATES[k // len(_LOADS)], _LOADS[k % len(_LOADS)]),
                          "%d.%02d" % (number // 100, number % 100), i)

    def _publish(self, name: str, value: str, i: int) -> None:
        t = ("$SYS/broker/" + name).encode()
        msg = Message(t + value.encode(), len(t), 0, True)
        if i < 0:
            self.extra[name] = msg
        else:
            self.values[i] = msg
        self.broker.route_message(msg)

    def put(self, topic: str, value: str) -> None:
        """Publish $SYS/broker/<topic> now if its value changed (a bridge's dropped count)."""
        old = self.extra.get(topic)
        if old is None or old.payload() != value.encode():
            self._publish(topic, value, -1)

    def publish_all(self, interval_s: float) -> None:
        if MPY:
            gc.collect()  # first, so that the values made now take the lowest free blocks
        b = self.broker
        offline = 0
        for s in b.sessions.values():
            if s.local is None and s.conn is None:
                offline += 1
        if self.values[0] is None:
            self._publish("version", "broker version %s" % VERSION, 0)
        self._set(_UPTIME, self.uptime_ms // 1000, "%d seconds")
        self._set(2, b.connected)
        self._set(3, offline)
        self._set(4, b.connected_max)
        self._set(5, b.connected + offline)
        self._set(6, b.sessions_expired)
        self._set(7, b.sessions_evicted)
        t = b.totals
        for j in range(T_CONNECTIONS):  # the counters before it, in the order of _NAMES
            self._set(_TOTALS + j, t[j])
        self._set(15, b.retained.count)
        self._set(16, b.subs.count)
        self._loads(interval_s)
        if MPY:
            gc.collect()  # what is in use, as mosquitto reports it, not uncollected garbage
            self._set(_HEAP, gc.mem_alloc())
            self._set(_HEAP + 1, gc.mem_free())

    def _loads(self, interval_s: float) -> None:
        """Exponentially weighted averages of each counter's rate, per minute, over 1, 5 and
        15 minutes, like the load averages of mosquitto and of Unix; shown with two decimals,
        and published when those change."""
        totals = self.broker.totals
        loads = self.loads
        decays = [math.exp(-interval_s / p) for p in _PERIODS]
        for i in range(len(_RATES)):
            count = totals[i]
            per_minute = (count - self.counts[i]) * 60.0 / interval_s
            self.counts[i] = count
            for j in range(len(_LOADS)):
                k = i * len(_LOADS) + j
                decay = decays[j]
                load = loads[k] * decay + per_minute * (1.0 - decay)
                loads[k] = load
                self._set(_LOAD + k, int(load * 100.0 + 0.5))

    def matching(self, filt: bytes) -> "List[Message]":
        found = []
        for m in self.values:
            if m is not None and filter_matches_in_place(filt, m.data, 0, m.tlen):
                found.append(m)
        for m in self.extra.values():
            if filter_matches_in_place(filt, m.data, 0, m.tlen):
                found.append(m)
        return found
