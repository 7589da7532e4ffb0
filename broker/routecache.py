"""CPython's subscription table: the table of broker.subscriptions, remembering which wildcard
filters each topic it routed matched, so that a topic seen before skips the walk of the tree.

Not on MicroPython, whose keys are hashes and whose heap cannot hold it (broker.lifecycle imports
this module on CPython only). Bounded by bytes, never by what clients choose to send: each entry
counts its topic, 8 bytes per filter matched and _CACHE_ENTRY for the objects around it; the
cache is emptied before it would hold more than _CACHE_BYTES, and an entry that would take more
than a sixteenth of that is not kept (a topic that long costs its walk anyway). It is emptied too
whenever a wildcard filter comes or goes.
"""
from broker.bytesops import topic_key
from broker.subscriptions import SubscriptionTable, mark
from broker.topics import has_wildcard

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Tuple, Union
    from broker.subscriptions import Buffer, KeyFunc

_CACHE_BYTES = 524288
_CACHE_ENTRY = 128


def _gather(subs: "List[Any]", found: "List[Any]", n: int, epoch: int) -> int:
    """mark's stand-in for the walk that fills the cache: which filters match."""
    found.append(subs)
    return n


class CachedSubscriptionTable(SubscriptionTable):
    def __init__(self, capacity: int, key: "KeyFunc" = topic_key) -> None:
        SubscriptionTable.__init__(self, capacity, key)
        # topic -> the subscriber lists of the wildcard filters matching it; only with bytes
        # keys, which are the topics themselves
        self.cache = {}  # type: Dict[Union[bytes, int], Tuple[List[Any], ...]]
        self.cache_bytes = 0
        self.cached = key is topic_key

    def held(self, filt: bytes, by: int) -> None:
        SubscriptionTable.held(self, filt, by)
        if has_wildcard(filt):
            self.cache.clear()
            self.cache_bytes = 0

    def collect(self, buf: "Buffer", start: int, end: int, hits: "List[Any]", epoch: int) -> int:
        if not self.cached:
            return SubscriptionTable.collect(self, buf, start, end, hits, epoch)
        key = self._key(buf, start, end)
        n = 0
        node = self._exact.get(key)
        if node is not None:  # bytes keys are exact: no chain
            n = mark(node.subs, hits, n, epoch)  # type: ignore[arg-type]
        if self.wildcard_count:
            found = self.cache.get(key)
            if found is None:
                got = []  # type: List[Any]
                self._walk(buf, start, end, _gather, got, 0, 0)
                found = tuple(got)
                size = end - start + 8 * len(found) + _CACHE_ENTRY
                if size <= _CACHE_BYTES // 16:
                    if self.cache_bytes + size > _CACHE_BYTES:
                        self.cache.clear()
                        self.cache_bytes = 0
                    self.cache[key] = found
                    self.cache_bytes += size
            for subs in found:
                n = mark(subs, hits, n, epoch)
        if self.groups:
            n = self.pick(hits, n, epoch)
        return n
