"""The fixed-capacity retained-message table: one message per topic [MQTT-3.3.1-5]."""
from broker.bytesops import equal_at, topic_key
from broker.session import Message
from broker.topics import Filter, filter_matches

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Union
    Buffer = Union[bytes, bytearray]
    Key = Union[bytes, int]


class RetainedTable:
    """Keyed like the exact subscriptions (bytesops.topic_key); a key may be an int hash on
    MicroPython, so each key holds a short list of messages told apart by their topic bytes."""

    def __init__(self, capacity: int, key: "Callable[[Buffer, int, int], Key]" = topic_key) -> None:
        self.capacity = capacity
        self.count = 0
        self.key = key
        self.table = {}  # type: Dict[Key, List[Message]]

    def _index(self, chain: "List[Message]", buf: "Buffer", ts: int, te: int) -> int:
        n = te - ts
        for i in range(len(chain)):
            m = chain[i]
            if m.tlen == n and equal_at(m.data, 0, buf, ts, n):
                return i
        return -1

    def store(self, msg: Message) -> bool:
        """Keep msg as the retained message of its topic, replacing any other [MQTT-3.3.1-5].
        False when the table is full and the topic has no retained message to replace."""
        k = self.key(msg.data, 0, msg.tlen)
        chain = self.table.get(k)
        if chain is None:
            if self.count >= self.capacity:
                return False
            self.table[k] = [msg]
            self.count += 1
            return True
        i = self._index(chain, msg.data, 0, msg.tlen)
        if i >= 0:
            chain[i] = msg
            return True
        if self.count >= self.capacity:
            return False
        chain.append(msg)
        self.count += 1
        return True

    def delete(self, buf: "Buffer", ts: int, te: int) -> bool:
        """Drop the retained message of topic buf[ts:te] [MQTT-3.3.1-10]."""
        k = self.key(buf, ts, te)
        chain = self.table.get(k)
        if chain is None:
            return False
        i = self._index(chain, buf, ts, te)
        if i < 0:
            return False
        chain.pop(i)
        if not chain:
            del self.table[k]
        self.count -= 1
        return True

    def matching(self, f: Filter) -> "List[Message]":
        """Retained messages whose topic matches filter f (subscribe time: allocation is fine)."""
        if not f.wild:
            chain = self.table.get(self.key(f.filt, 0, len(f.filt)))
            if chain is None:
                return []
            i = self._index(chain, f.filt, 0, len(f.filt))
            return [chain[i]] if i >= 0 else []
        found = []
        for chain in self.table.values():
            for m in chain:
                if filter_matches(f, m.data, 0, m.tlen):
                    found.append(m)
        return found
