"""Topic names, topic filters and the fixed-size subscription table (MQTT 3.1.1 section 4.7).

Topics and filters are bytes end to end. The routing path (`filter_matches`,
`SubscriptionTable.collect`) works on a buffer plus integer offsets and allocates nothing on
MicroPython: no slices, no tuples, no bound methods, no strings.

Valid filters: "#", "+", "/", "//", "+/+", "/#", "sport/#", "sport/+/player1", "+/tennis/#".
Invalid filters: "", "sport+", "+a", "a#", "#/", "sport/#/x", "sport/tennis#", anything with U+0000
or bad UTF-8, and, as in mosquitto 2.0, a filter or topic name with more than 200 '/' (201 levels:
TOPIC_HIERARCHY_LIMIT in its lib/util_topic.c), which bounds how deep the routing walk goes.
"""
from broker.bytesops import MPY, topic_key, utf8_valid

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple, Union
    Buffer = Union[bytes, bytearray]
    KeyFunc = Callable[[Buffer, int, int], Union[bytes, int]]

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[no-untyped-def,misc]
        return x

_SLASH = const(0x2F)   # '/'
_PLUS = const(0x2B)    # '+'
_HASH = const(0x23)    # '#'
_DOLLAR = const(0x24)  # '$'
_WILD_CACHE_MAX = const(4096)  # topics remembered with their matching wildcard filters
_SLASHES_MAX = const(200)  # '/' in a topic name or filter, as mosquitto counts them


def valid_topic_name(buf: "Buffer", start: int, end: int) -> bool:
    """A PUBLISH topic name in buf[start:end], checked in place (length limit: the caller's)."""
    if end <= start:  # at least one character [MQTT-4.7.3-1]
        return False
    if buf.find(b"+", start, end) >= 0 or buf.find(b"#", start, end) >= 0:
        return False  # no wildcards in a topic name [MQTT-3.3.2-2] [MQTT-4.7.1-1]
    if end - start > _SLASHES_MAX and buf.count(b"/", start, end) > _SLASHES_MAX:
        return False
    return utf8_valid(buf, start, end)  # UTF-8, no U+0000 [MQTT-1.5.3-1] [MQTT-4.7.3-2]


def valid_topic_filter(filt: bytes) -> bool:
    """A SUBSCRIBE/UNSUBSCRIBE topic filter (length limit: the caller's)."""
    n = len(filt)
    if n == 0 or not utf8_valid(filt, 0, n):  # [MQTT-4.7.3-1] [MQTT-4.7.3-2]
        return False
    if n > _SLASHES_MAX and filt.count(b"/") > _SLASHES_MAX:
        return False
    pos = 0
    while True:
        e = filt.find(b"/", pos)
        if e < 0:
            e = n
        if filt.find(b"+", pos, e) >= 0 and e - pos != 1:
            return False  # '+' must occupy a whole level [MQTT-4.7.1-3]
        if filt.find(b"#", pos, e) >= 0 and (e - pos != 1 or e != n):
            return False  # '#' alone in the last level [MQTT-4.7.1-2]
        if e == n:
            return True
        pos = e + 1


def has_wildcard(filt: bytes) -> bool:
    return filt.find(b"+") >= 0 or filt.find(b"#") >= 0


class Filter:
    """A compiled topic filter.

    `prefix` is the run of literal levels before the first '+' (joined, without the '/' that
    follows them; None when the filter starts with '+' or '#'), tested with one startswith.
    `levels` holds the levels after it, up to a trailing '#': the level's bytes, or None for '+'.
    `hash` is True when the filter ends in '#'; `nodollar` when its first character is a
    wildcard, so that it does not match topics beginning with '$' [MQTT-4.7.2-1].
    """

    # Defaults on the class: MicroPython stores only the attributes an instance changes.
    hash = False
    prefix = None  # type: Optional[bytes]
    plen = 0
    levels = ()  # type: Tuple[Optional[bytes], ...]
    nlev = 0
    nodollar = False

    def __init__(self, filt: bytes) -> None:
        self.filt = filt
        self.wild = has_wildcard(filt)
        parts = filt.split(b"/")
        if parts[-1] == b"#":
            self.hash = True
            parts.pop()
        k = 0
        while k < len(parts) and parts[k] != b"+":
            k += 1
        if k:
            self.prefix = b"/".join(parts[:k])
            self.plen = len(self.prefix)
        if k < len(parts):
            self.levels = tuple([None if lev == b"+" else lev for lev in parts[k:]])
            self.nlev = len(self.levels)
        if filt and (filt[0] == _PLUS or filt[0] == _HASH):
            self.nodollar = True


def filter_matches(f: Filter, buf: "Buffer", start: int, end: int) -> bool:
    """Does the topic name buf[start:end] match f? In place, allocation-free.

    Kept to six locals (N_STATE 11) so that MicroPython keeps its frame off the heap.
    """
    if not f.wild:
        return end - start == len(f.filt) and buf.startswith(f.filt, start)
    lev = f.prefix
    if lev is not None:
        if not buf.startswith(lev, start):
            return False
        start += f.plen
        if start >= end:  # topic used up: only a bare trailing '#' (the parent level) is left?
            return start == end and f.nlev == 0
        if buf[start] != _SLASH:
            return False
        start += 1
    elif f.nodollar and start < end and buf[start] == _DOLLAR:
        return False  # [MQTT-4.7.2-1]
    i = -f.nlev  # f.levels[i] walks forward; i == 0 once the last one is taken
    while i:
        lev = f.levels[i]
        i += 1
        if lev is None:  # '+': any one level, the empty one included
            start = buf.find(b"/", start, end)
            if start < 0:
                return not i  # topic used up: match if the filter is too ('#' takes the parent)
        else:
            if not buf.startswith(lev, start):
                return False
            start += len(lev)
            if start >= end:  # also rejects a level that only fits by running past `end`
                return start == end and not i
            if buf[start] != _SLASH:
                return False
        start += 1
    return f.hash  # topic has levels left: only '#' takes them


class _Node(Filter):
    """One distinct filter and its subscribers.

    `subs` holds them in one flat list, session then granted QoS: [s0, q0, s1, q1, ...]. A
    wildcard node is its own compiled Filter; an exact one keeps only `filt`, `key` (its dict
    key) and `subs`. One object and one list per filter instead of three objects: make mem
    (64-bit) went from 366 to 264 bytes per exact subscription and from 744 to 584 per wildcard.
    """

    wild = False
    next = None  # type: Optional[_Node]  # exact filters sharing a dict key

    def __init__(self, filt: bytes, key: "Union[bytes, int]", wild: bool) -> None:
        if wild:
            Filter.__init__(self, filt)
        else:
            self.filt = filt
            self.key = key
        self.subs = []  # type: List[Any]

    def find(self, session: object) -> int:
        """The index of session in subs (its QoS follows it), or -1."""
        subs = self.subs
        for i in range(0, len(subs), 2):
            if subs[i] is session:
                return i
        return -1

    def drop(self, i: int) -> None:
        subs = self.subs
        subs[i] = subs[-2]
        subs[i + 1] = subs[-1]
        subs.pop()
        subs.pop()


def _deliver(subs: "List[Any]", hits: "List[Any]", n: int, epoch: int) -> int:
    """Mark the subscribers of one matching node; n counts the sessions in hits so far."""
    i = len(subs)
    while i:
        i -= 2
        s = subs[i]
        if s.route_mark != epoch:
            s.route_mark = epoch
            s.route_qos = subs[i + 1]
            hits[n] = s
            n += 1
        elif subs[i + 1] > s.route_qos:  # one copy per session, at its highest QoS [MQTT-3.3.5-1]
            s.route_qos = subs[i + 1]
    return n


class SubscriptionTable:
    """All subscriptions of all sessions, at most `capacity` of them.

    Exact filters: a dict keyed by `key(filt, 0, len(filt))` (bytes on CPython, an int hash on
    MicroPython) whose values are chains of nodes, checked byte for byte. Wildcard filters: a list
    of nodes, each tested once per routed topic. Per session: a dict filter -> node.
    """

    def __init__(self, capacity: int, key: "KeyFunc" = topic_key) -> None:
        self.capacity = capacity
        self.count = 0  # (session, filter) subscriptions
        self.exact_count = 0  # distinct exact filters
        self.wildcard_count = 0  # distinct wildcard filters
        self._key = key
        self._exact = {}  # type: Dict[Union[bytes, int], _Node]
        self._wild = []  # type: List[_Node]
        self._wild_by_filt = {}  # type: Dict[bytes, _Node]
        # CPython: topic -> the wildcard nodes matching it, so a topic seen before skips the
        # filters; emptied whenever a wildcard filter comes or goes. Not on MicroPython, whose
        # keys are hashes and whose heap cannot hold it; nor with a caller's key function.
        self._wild_cache = None  # type: Optional[Dict[Union[bytes, int], Tuple[_Node, ...]]]
        if not MPY and key is topic_key:
            self._wild_cache = {}
        self._by_session = {}  # type: Dict[object, Dict[bytes, _Node]]

    def _lookup(self, filt: bytes) -> "Optional[_Node]":
        if has_wildcard(filt):
            return self._wild_by_filt.get(filt)
        node = self._exact.get(self._key(filt, 0, len(filt)))
        while node is not None and node.filt != filt:
            node = node.next
        return node

    def subscribe(self, session: object, filt: bytes, qos: int, share: int = 0) -> int:
        """1 if added; 0 if this session's identical filter had its QoS replaced [MQTT-3.8.4-3];
        -1 if the table is full, -2 if the session holds `share` filters already (0: no such
        limit); nothing changes on a refusal."""
        mine = self._by_session.get(session)
        if mine is not None:
            node = mine.get(filt)
            if node is not None:
                node.subs[node.find(session) + 1] = qos
                return 0
            if share and len(mine) >= share:
                return -2
        if self.count >= self.capacity:
            return -1
        node = self._lookup(filt)
        if node is None:
            wild = has_wildcard(filt)
            key = b"" if wild else self._key(filt, 0, len(filt))  # type: Union[bytes, int]
            node = _Node(filt, key, wild)
            if wild:
                self._wild.append(node)
                self._wild_by_filt[filt] = node
                if self._wild_cache is not None:
                    self._wild_cache.clear()
                self.wildcard_count += 1
            else:
                node.next = self._exact.get(key)
                self._exact[key] = node
                self.exact_count += 1
        node.subs.append(session)
        node.subs.append(qos)
        if mine is None:
            mine = {}
            self._by_session[session] = mine
        mine[filt] = node
        self.count += 1
        return 1

    def _release(self, session: object, node: _Node) -> None:
        node.drop(node.find(session))
        self.count -= 1
        if node.subs:
            return
        if node.wild:
            self._wild.remove(node)
            del self._wild_by_filt[node.filt]
            if self._wild_cache is not None:
                self._wild_cache.clear()
            self.wildcard_count -= 1
            return
        head = self._exact[node.key]
        if head is node:
            if node.next is None:
                del self._exact[node.key]
            else:
                self._exact[node.key] = node.next
        else:
            while head.next is not node:
                head = head.next  # type: ignore[assignment]
            head.next = node.next
        node.next = None
        self.exact_count -= 1

    def unsubscribe(self, session: object, filt: bytes) -> bool:
        mine = self._by_session.get(session)
        if mine is None or filt not in mine:
            return False
        self._release(session, mine.pop(filt))
        if not mine:
            del self._by_session[session]
        return True

    def remove_session(self, session: object) -> int:
        mine = self._by_session.pop(session, None)
        if mine is None:
            return 0
        for node in mine.values():
            self._release(session, node)
        return len(mine)

    def filters_of(self, session: object) -> "List[Tuple[bytes, int]]":
        mine = self._by_session.get(session)
        if mine is None:
            return []
        return [(filt, node.subs[node.find(session) + 1]) for filt, node in mine.items()]

    def collect(self, buf: "Buffer", start: int, end: int, hits: "List[Any]", epoch: int) -> int:
        """Put each session with a subscription matching topic buf[start:end] into hits once.

        Sets s.route_mark = epoch and s.route_qos = the highest granted QoS among its matching
        subscriptions. Returns how many sessions were put into hits[0:n]. Allocation-free on
        MicroPython.
        """
        if self._wild_cache is not None:
            return self._collect_cached(buf, start, end, hits, epoch)
        n = 0
        if self.exact_count:
            node = self._exact.get(self._key(buf, start, end))
            while node is not None:
                if len(node.filt) == end - start and buf.startswith(node.filt, start):
                    n = _deliver(node.subs, hits, n, epoch)
                    break
                node = node.next
        wild = self._wild
        j = len(wild)
        while j:
            j -= 1
            node = wild[j]
            if filter_matches(node, buf, start, end):
                n = _deliver(node.subs, hits, n, epoch)
        return n

    def _collect_cached(self, buf: "Buffer", start: int, end: int, hits: "List[Any]",
                        epoch: int) -> int:
        """collect() on CPython: the topic's bytes are the key of both dicts."""
        key = self._key(buf, start, end)
        n = 0
        node = self._exact.get(key)
        if node is not None:  # bytes keys are exact: no chain
            n = _deliver(node.subs, hits, n, epoch)
        wild = self._wild
        if wild:
            cache = self._wild_cache
            found = cache.get(key)  # type: ignore[union-attr]
            if found is None:
                if len(cache) >= _WILD_CACHE_MAX:  # type: ignore[arg-type]
                    cache.clear()  # type: ignore[union-attr]
                found = tuple([w for w in wild if filter_matches(w, buf, start, end)])
                cache[key] = found  # type: ignore[index]
            for node in found:
                n = _deliver(node.subs, hits, n, epoch)
        return n
