"""The fixed-capacity retained-message table: one message per topic [MQTT-3.3.1-5]."""
from broker.bytesops import equal_at, topic_key
from broker.session import Ledger, Message
from broker.topics import Filter, filter_matches

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Union
    Buffer = Union[bytes, bytearray]
    Key = Union[bytes, int]


# What store() answers.
KEPT = 0
FULL = 1   # the table is full and the topic has no retained message to replace
SHARE = 2  # its owner holds its share of the table already


class RetainedTable:
    """Keyed like the exact subscriptions (bytesops.topic_key); a key may be an int hash on
    MicroPython, so each key holds a short list of messages told apart by their topic bytes."""

    def __init__(self, capacity: int, key: "Callable[[Buffer, int, int], Key]" = topic_key,
                 ledger: "Optional[Ledger]" = None) -> None:
        self.capacity = capacity
        self.count = 0
        self.key = key
        self.ledger = ledger if ledger is not None else Ledger()
        self.table = {}  # type: Dict[Key, List[Message]]
        self.owned = {}  # type: Dict[str, int]  # client id -> retained messages it set

    def _index(self, chain: "List[Message]", buf: "Buffer", ts: int, te: int) -> int:
        n = te - ts
        for i in range(len(chain)):
            m = chain[i]
            if m.tlen == n and equal_at(m.data, 0, buf, ts, n):
                return i
        return -1

    def store(self, msg: Message, owner: str = "", share: int = 0) -> int:
        """Keep msg as the retained message of its topic, replacing any other [MQTT-3.3.1-5]:
        KEPT, FULL, or SHARE when `owner` (a client id; "" for the broker's own messages, never
        limited) holds `share` retained messages already and would hold one more."""
        k = self.key(msg.data, 0, msg.tlen)
        chain = self.table.get(k)
        i = -1 if chain is None else self._index(chain, msg.data, 0, msg.tlen)
        if i < 0 and self.count >= self.capacity:
            return FULL
        if owner and share and self.owned.get(owner, 0) >= share\
                and (i < 0 or chain[i].owner != owner):  # type: ignore[index]
            return SHARE
        self._own(msg, owner)
        if chain is None:
            self.table[k] = [msg]
        elif i >= 0:
            self._disown(chain[i])
            chain[i] = msg
            return KEPT
        else:
            chain.append(msg)
        self.count += 1
        return KEPT

    def _own(self, msg: Message, owner: str) -> None:
        self.ledger.hold(msg)
        if owner:
            msg.owner = owner
            self.owned[owner] = self.owned.get(owner, 0) + 1

    def _disown(self, msg: Message) -> None:
        self.ledger.release(msg)
        owner = msg.owner
        if owner:
            n = self.owned[owner] - 1
            if n:
                self.owned[owner] = n
            else:
                del self.owned[owner]

    def delete(self, buf: "Buffer", ts: int, te: int) -> bool:
        """Drop the retained message of topic buf[ts:te] [MQTT-3.3.1-10]."""
        k = self.key(buf, ts, te)
        chain = self.table.get(k)
        if chain is None:
            return False
        i = self._index(chain, buf, ts, te)
        if i < 0:
            return False
        self._disown(chain.pop(i))
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
