"""The $SYS/broker/... topics mosquitto publishes, every sys_interval seconds.

Imported only when sys_interval is above 0. Values are kept here, not in the retained table, so
that they never take a user's retained slot; a new subscription gets them with RETAIN set, like
retained messages, and a value is published again only when it changed (as mosquitto does).
"""
import math

from broker import VERSION
from broker.bytesops import MPY
from broker.lifecycle import (
    T_BYTES_RECEIVED, T_BYTES_SENT, T_MESSAGES_DROPPED, T_MESSAGES_RECEIVED, T_MESSAGES_SENT,
    T_PACKETS_RECEIVED, T_PACKETS_SENT,
)
from broker.session import Message
from broker.topics import Filter, filter_matches

if MPY:
    import gc  # mem_alloc/mem_free: on a board the heap is worth watching

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List
    from broker.lifecycle import Lifecycle

_LOADS = (("1min", 60.0), ("5min", 300.0), ("15min", 900.0))

# Topics under $SYS/broker/load/, in the order of Broker.totals.
_RATES = (
    "messages/received", "messages/sent", "bytes/received", "bytes/sent",
    "publish/received", "publish/sent", "publish/dropped", "connections",
)


class SysTopics:
    def __init__(self, broker: "Lifecycle", interval_s: int) -> None:
        self.broker = broker
        self.interval_ms = interval_s * 1000
        self.last = 0
        self.uptime_ms = 0
        self.values = {}  # type: Dict[bytes, Message]
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

    def _set(self, topic: str, value: str) -> None:
        t = ("$SYS/broker/" + topic).encode()
        v = value.encode()
        old = self.values.pop(t, None)
        msg = Message(t + v, len(t), 0, True)
        # Made again even when unchanged, with its key: a value made during a storm of
        # clients would otherwise keep its place, wherever the storm left room, and split the
        # heap the storm gave back for as long as it does not change.
        self.values[t] = msg
        if old is None or old.payload() != v:
            self.broker.route_message(msg)

    def put(self, topic: str, value: str) -> None:
        """Publish $SYS/broker/<topic> now if its value changed (a bridge's dropped count)."""
        self._set(topic, value)

    def publish_all(self, interval_s: float) -> None:
        if MPY:
            gc.collect()  # first, so that the values made now take the lowest free blocks
        b = self.broker
        offline = 0
        local = 0
        for s in b.sessions.values():
            if s.local is not None:
                local += 1
            elif s.conn is None:
                offline += 1
        self._set("version", "broker version %s" % VERSION)
        self._set("uptime", "%d seconds" % (self.uptime_ms // 1000))
        self._set("clients/connected", str(b.connected))
        self._set("clients/disconnected", str(offline))
        self._set("clients/maximum", str(b.connected_max))
        self._set("clients/total", str(b.connected + offline))
        self._set("clients/expired", str(b.sessions_expired))
        self._set("clients/evicted", str(b.sessions_evicted))
        t = b.totals
        self._set("messages/received", str(t[T_PACKETS_RECEIVED]))
        self._set("messages/sent", str(t[T_PACKETS_SENT]))
        self._set("bytes/received", str(t[T_BYTES_RECEIVED]))
        self._set("bytes/sent", str(t[T_BYTES_SENT]))
        self._set("publish/messages/received", str(t[T_MESSAGES_RECEIVED]))
        self._set("publish/messages/sent", str(t[T_MESSAGES_SENT]))
        self._set("publish/messages/dropped", str(t[T_MESSAGES_DROPPED]))
        self._set("retained messages/count", str(b.retained.count))
        self._set("subscriptions/count", str(b.subs.count))
        self._loads(interval_s)
        if MPY:
            gc.collect()  # what is in use, as mosquitto reports it, not uncollected garbage
            self._set("heap/current", str(gc.mem_alloc()))
            self._set("heap/free", str(gc.mem_free()))

    def _loads(self, interval_s: float) -> None:
        """Exponentially weighted averages of each counter's rate, per minute, over 1, 5 and
        15 minutes, like the load averages of mosquitto and of Unix."""
        totals = self.broker.totals
        for i in range(len(_RATES)):
            name = _RATES[i]
            count = totals[i]
            per_minute = (count - self.counts[i]) * 60.0 / interval_s
            self.counts[i] = count
            for j in range(len(_LOADS)):
                label, period = _LOADS[j]
                k = i * len(_LOADS) + j
                decay = math.exp(-interval_s / period)
                load = self.loads[k] * decay + per_minute * (1.0 - decay)
                self.loads[k] = load
                self._set("load/%s/%s" % (name, label), "%.2f" % load)

    def matching(self, f: Filter) -> "List[Message]":
        return [m for m in self.values.values() if filter_matches(f, m.data, 0, m.tlen)]
