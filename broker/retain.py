"""The fixed-capacity retained-message table: one message per topic [MQTT-3.3.1-5]."""
from broker.bytesops import equal_at, topic_key
from broker.session import Ledger
from broker.topics import filter_matches_in_place, has_wildcard

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Union
    from broker.session import Message
    from broker.settings import Config
    Buffer = Union[bytes, bytearray]
    Key = Union[bytes, int]


# What store() answers.
KEPT = 0
FULL = 1   # the table is full and the topic has no retained message to replace
SHARE = 2  # its owner holds its share of the table already


def retained_share(config: "Config") -> int:
    """How many retained messages one client may have set: max_retained_per_client, by default
    half the table, so that one client cannot take every slot from the others."""
    return config.max_retained_per_client or max(1, config.max_retained_messages // 2)


class RetainedTable:
    """Keyed like the exact subscriptions (bytesops.topic_key); a key may be an int hash on
    MicroPython, so each key holds a short chain of messages told apart by their topic bytes.
    A chain is one flat list, message then the client id that set it ("" for the broker's own
    messages): [m0, owner0, m1, owner1, ...], one list slot per owner rather than a field in
    every Message."""

    def __init__(self, capacity: int, key: "Callable[[Buffer, int, int], Key]" = topic_key,
                 ledger: "Optional[Ledger]" = None) -> None:
        self.capacity = capacity
        self.count = 0
        self.key = key
        self.ledger = ledger if ledger is not None else Ledger()
        self.table = {}  # type: Dict[Key, List[Any]]
        self.owned = {}  # type: Dict[str, int]  # client id -> retained messages it set

    def _index(self, chain: "List[Any]", buf: "Buffer", ts: int, te: int) -> int:
        n = te - ts
        for i in range(0, len(chain), 2):
            m = chain[i]
            if m.tlen == n and equal_at(m.data, 0, buf, ts, n):
                return i
        return -1

    def store(self, msg: "Message", owner: str = "", share: int = 0) -> int:
        """Keep msg as the retained message of its topic, replacing any other [MQTT-3.3.1-5]:
        KEPT, FULL, or SHARE when `owner` (a client id; "" for the broker's own messages, never
        limited) holds `share` retained messages already and would hold one more."""
        k = self.key(msg.data, 0, msg.tlen)
        chain = self.table.get(k)
        i = -1 if chain is None else self._index(chain, msg.data, 0, msg.tlen)
        if i < 0 and self.count >= self.capacity:
            return FULL
        if owner and share and self.owned.get(owner, 0) >= share\
                and (i < 0 or chain[i + 1] != owner):  # type: ignore[index]
            return SHARE
        self.ledger.hold(msg)
        if self.ledger.changes is not None:  # persistence on: saved at its next save point
            self.ledger.changes.topic(msg.data, 0, msg.tlen)
        if owner:
            self.owned[owner] = self.owned.get(owner, 0) + 1
        if chain is None:
            self.table[k] = [msg, owner]
        elif i >= 0:
            self._forget(chain, i)
            chain[i] = msg
            chain[i + 1] = owner
            return KEPT
        else:
            chain.append(msg)
            chain.append(owner)
        self.count += 1
        return KEPT

    def _forget(self, chain: "List[Any]", i: int) -> None:
        """The message at chain[i] leaves the table (or is replaced)."""
        self.ledger.release(chain[i])
        owner = chain[i + 1]
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
        self._forget(chain, i)
        if self.ledger.changes is not None:
            self.ledger.changes.topic(buf, ts, te)
        chain.pop(i + 1)
        chain.pop(i)
        if not chain:
            del self.table[k]
        self.count -= 1
        return True

    def matching(self, filt: bytes) -> "List[Message]":
        """Retained messages whose topic matches filter filt (subscribe time: the list is the
        only allocation; a deep filter is never compiled)."""
        if not has_wildcard(filt):
            chain = self.table.get(self.key(filt, 0, len(filt)))
            if chain is None:
                return []
            i = self._index(chain, filt, 0, len(filt))
            return [chain[i]] if i >= 0 else []
        found = []
        for chain in self.table.values():
            for i in range(0, len(chain), 2):
                m = chain[i]
                if filter_matches_in_place(filt, m.data, 0, m.tlen):
                    found.append(m)
        return found
