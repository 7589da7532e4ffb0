"""The fixed-size table of subscriptions (MQTT 3.1.1 sections 3.8 and 4.7).

Exact filters: a dict keyed by `key(filt, 0, len(filt))` (bytes on CPython, an int hash on
MicroPython) whose values are chains of nodes, checked byte for byte. Wildcard filters: the tree
of broker.filtertree, as mosquitto keeps all its filters, walked along the topic's levels: routing
costs what the topic's levels and the filters sharing them cost, never what the other filters do.
Per session: its filters, each with its subscriber list (an index, below). `collect` works on a
buffer plus integer offsets and allocates nothing on MicroPython. CPython's broker runs
broker.routecache's table, which remembers what each topic matched. A shared subscription's group
is one entry in its filter's subscriber list, which picks a member as a message is routed
(broker.shared, loaded by the first one).
"""
from broker.bytesops import const, equal_at, micropython, topic_key
from broker.filtertree import FilterTree, Node, unchain
from broker.topics import has_wildcard

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple, Union
    Buffer = Union[bytes, bytearray]
    Take = Callable[[List[Any], List[Any], int, int], int]
    from broker.filtertree import KeyFunc as KeyFunc


_OPTION_QOS = const(0x03)
_OPTION_NO_LOCAL = const(0x04)
_OPTION_RETAIN_AS_PUBLISHED = const(0x08)
_OPTION_SEVERAL_IDS = const(0x10)
_OPTION_ID_SHIFT = const(5)

_SLASH = const(0x2F)   # '/'
_PLUS = const(0x2B)    # '+'
_HASH = const(0x23)    # '#'
_DOLLAR = const(0x24)  # '$'


def _find(subs: "List[Any]", session: object) -> int:
    """The index of session in subs (its QoS follows it), or -1."""
    for i in range(0, len(subs), 2):
        if subs[i] is session:
            return i
    return -1


def _drop(subs: "List[Any]", i: int) -> None:
    subs[i] = subs[-2]
    subs[i + 1] = subs[-1]
    subs.pop()
    subs.pop()


# A session's index of its own filters, each with its filter's subscriber list: a flat list
# [filt, subs, filt, subs, ...] while it holds up to _INDEX_FLAT of them, a dict filt -> subs past
# that. Most clients hold a few filters, and an idle one's index is then a list of two items
# where a dict of one key costs 224 bytes on CPython; a client with many keeps its lookups O(1).
_INDEX_FLAT = const(8)


def index_items(mine: "Any") -> "List[Tuple[bytes, List[Any]]]":
    """(filt, subs) for each filter of the index."""
    if isinstance(mine, dict):
        return list(mine.items())
    return [(mine[i], mine[i + 1]) for i in range(0, len(mine), 2)]


def merge_options(a: int, b: int) -> int:
    """The options (broker.const.OPTION_*) of one copy for two matching subscriptions of a
    session: the higher QoS [MQTT-3.3.5-1]; No Local only when both ask for it; Retain As
    Published when either does; a Subscription Identifier, and OPTION_SEVERAL_IDS when they
    have two different ones (the delivery then gathers them all [MQTT-3.3.4-4]). A 3.1.1
    subscription's options are its QoS."""
    q = a & _OPTION_QOS if (a & _OPTION_QOS) > (b & _OPTION_QOS) else b & _OPTION_QOS
    sa = a >> _OPTION_ID_SHIFT
    sb = b >> _OPTION_ID_SHIFT
    several = (a | b) & _OPTION_SEVERAL_IDS
    if sa and sb and sa != sb:
        several = _OPTION_SEVERAL_IDS
    return q | (a & b & _OPTION_NO_LOCAL) | ((a | b) & _OPTION_RETAIN_AS_PUBLISHED) | several\
        | ((sa or sb) << _OPTION_ID_SHIFT)


def mark(subs: "List[Any]", hits: "List[Any]", n: int, epoch: int) -> int:
    """Mark the subscribers of one matching filter; n counts the sessions in hits so far."""
    i = len(subs)
    while i:
        i -= 2
        s = subs[i]
        if s.route_mark != epoch:
            s.route_mark = epoch
            s.route_qos = subs[i + 1]
            hits[n] = s
            n += 1
        elif subs[i + 1] != s.route_qos:  # one copy per session [MQTT-3.3.5-1]
            s.route_qos = merge_options(s.route_qos, subs[i + 1])
    return n


class SubscriptionTable(FilterTree):
    """All subscriptions of all sessions, at most `capacity` of them (see the module's text)."""

    # Shared subscriptions (broker.shared): their groups, the function that picks their
    # members in hits, and the broker's hits, which they need room in.
    groups = 0
    pick = None  # type: Any
    hits = None  # type: Optional[List[Any]]

    def __init__(self, capacity: int, key: "KeyFunc" = topic_key) -> None:
        FilterTree.__init__(self, key)
        self.capacity = capacity
        self.count = 0  # (session, filter) subscriptions
        self.exact_count = 0  # distinct exact filters
        self.wildcard_count = 0  # distinct wildcard filters
        self._exact = {}  # type: Dict[Union[bytes, int], Node]
        self._by_session = {}  # type: Dict[object, Any]  # session -> its index (above)

    def _subs(self, filt: bytes, create: bool) -> "Optional[List[Any]]":
        """The subscriber list of filt (made empty where missing, with create), or None; a
        shared subscription's: its group's members."""
        if filt.startswith(b"$share/"):
            from broker.shared import members
            return members(self, filt, create)
        if has_wildcard(filt):
            node = self.node(filt, create)
        else:
            key = self._key(filt, 0, len(filt))
            node = self._exact.get(key)
            while node is not None and node.lev != filt:
                node = node.next
            if node is None and create:
                node = Node()
                node.lev = filt
                if key in self._exact:
                    node.next = self._exact[key]
                self._exact[key] = node
        if node is None:
            return None
        if filt[-1] == _HASH:
            if node.hash is None and create:
                node.hash = []
            return node.hash
        if node.subs is None and create:
            node.subs = []
        return node.subs

    def _remove(self, filt: bytes, subs: "Optional[List[Any]]") -> None:
        """Take out filt's subscriber list subs, empty now (None: it was never made)."""
        if filt.startswith(b"$share/"):
            from broker.shared import remove
            remove(self, filt, subs)
            return
        if has_wildcard(filt):
            self.prune(filt, subs)
            return
        key = self._key(filt, 0, len(filt))
        node = self._exact.get(key)
        while node is not None and node.lev != filt:
            node = node.next
        if node is not None:
            unchain(self._exact, key, node)

    def subscribe(self, session: object, filt: bytes, qos: int, share: int = 0) -> int:
        """1 if added; 0 if this session's identical filter had its QoS replaced [MQTT-3.8.4-3];
        -1 if the table is full, -2 if the session holds `share` filters already (0: no such
        limit); nothing changes on a refusal. Should the heap run out on the way, nothing is
        changed either and MemoryError goes to the caller."""
        mine = self._by_session.get(session)
        if mine is not None:
            if isinstance(mine, dict):
                subs = mine.get(filt)
                filters = len(mine)
            else:
                subs = None
                for i in range(0, len(mine), 2):
                    if mine[i] == filt:
                        subs = mine[i + 1]
                        break
                filters = len(mine) >> 1
            if subs is not None:
                subs[_find(subs, session) + 1] = qos
                return 0
            if share and filters >= share:
                return -2
        if self.count >= self.capacity:
            return -1
        shared = filt.startswith(b"$share/")
        try:
            if shared or self.groups:
                from broker.shared import room
                room(self)
            subs = self._subs(filt, True)
            assert subs is not None
            subs.extend((session, qos))  # (both or neither)
            if mine is None:
                self._by_session[session] = [filt, subs]
            elif isinstance(mine, dict):
                mine[filt] = subs
            elif len(mine) < 2 * _INDEX_FLAT:
                mine.extend((filt, subs))
            else:
                grown = {}  # type: Dict[bytes, List[Any]]
                for i in range(0, len(mine), 2):
                    grown[mine[i]] = mine[i + 1]
                grown[filt] = subs
                self._by_session[session] = grown
        except MemoryError:
            subs = self._subs(filt, False)
            if subs is not None and subs[-2:] == [session, qos]:  # (the last pair: it came last)
                subs.pop()
                subs.pop()
            if not subs:
                self._remove(filt, subs)
            raise
        if len(subs) == 2 and not shared:  # a filter no session held (broker.shared counts its)
            self.held(filt, 1)
        self.count += 1
        return 1

    def held(self, filt: bytes, by: int) -> None:
        """A distinct filter came (by 1) or went (by -1)."""
        if has_wildcard(filt):
            self.wildcard_count += by
        else:
            self.exact_count += by

    def _release(self, session: object, filt: bytes, subs: "List[Any]") -> None:
        _drop(subs, _find(subs, session))
        self.count -= 1
        if subs:
            return
        self._remove(filt, subs)
        if not filt.startswith(b"$share/"):
            self.held(filt, -1)

    def unsubscribe(self, session: object, filt: bytes) -> bool:
        mine = self._by_session.get(session)
        if mine is None:
            return False
        if isinstance(mine, dict):
            subs = mine.pop(filt, None)
        else:
            subs = None
            for i in range(0, len(mine), 2):
                if mine[i] == filt:
                    subs = mine[i + 1]
                    del mine[i + 1]
                    del mine[i]
                    break
        if subs is None:
            return False
        self._release(session, filt, subs)
        if not mine:
            del self._by_session[session]
        return True

    def remove_session(self, session: object) -> int:
        mine = self._by_session.pop(session, None)
        if mine is None:
            return 0
        items = index_items(mine)
        for filt, subs in items:
            self._release(session, filt, subs)
        return len(items)

    def filters_of(self, session: object) -> "List[Tuple[bytes, int]]":
        mine = self._by_session.get(session)
        if mine is None:
            return []
        return [(filt, subs[_find(subs, session) + 1]) for filt, subs in index_items(mine)]

    @micropython.native
    def collect(self, buf: "Buffer", start: int, end: int, hits: "List[Any]", epoch: int) -> int:
        """Put each session with a subscription matching topic buf[start:end] into hits once.

        Sets s.route_mark = epoch and s.route_qos = the options of its matching subscriptions
        (merge_options); a shared subscription's group puts the member it picks. Returns how
        many sessions were put into hits[0:n]. Allocation-free on MicroPython.
        """
        n = 0
        if self.exact_count:
            node = self._exact.get(self._key(buf, start, end))
            while node is not None:
                if len(node.lev) == end - start and buf.startswith(node.lev, start):
                    n = mark(node.subs, hits, n, epoch)  # type: ignore[arg-type]
                    break
                node = node.next
        if self.wildcard_count:
            n = self._walk(buf, start, end, mark, hits, n, epoch)
        if self.groups:
            n = self.pick(hits, n, epoch)
        return n

    # take(subs, hits, n, epoch) for each wildcard filter matching topic buf[start:end]; returns
    # the last n it returned. Down the tree along the topic's levels: below a node whose run took
    # the topic's levels up to `pos` (end + 1: all of them), its '#' matches at once, the node of
    # the topic's next level (one dict lookup) is tried next and its '+' node waits on the stack.
    # A run takes the topic's levels when its literal levels up to a '+' level equal the topic's,
    # compared at once, '/' included, and each of its '+' levels takes one level, even an empty
    # one. One function, as the loop routing spends its time in. Allocation-free on MicroPython.
    @micropython.native
    def _walk(self, buf: "Buffer", start: int, end: int, take: "Take", hits: "List[Any]", n: int,
              epoch: int) -> int:
        key = self._key
        stack = self._stack
        sp = 0
        node = self.root
        if start < end and buf[start] == _DOLLAR:
            node = self._lit  # [MQTT-4.7.2-1]
        pos = start
        while True:
            subs = node.hash
            if subs is not None:  # '#' takes what is left of the topic, even nothing [MQTT-4.7.1-2]
                n = take(subs, hits, n, epoch)
            kid = None  # type: Optional[Node]
            if pos > end:  # the topic is used up: the filter ending here matches
                subs = node.subs
                if subs is not None:
                    n = take(subs, hits, n, epoch)
            else:
                if node.plus is not None:
                    stack[sp] = node.plus
                    stack[sp + 1] = pos
                    sp += 2
                kids = node.kids
                if kids is not None:
                    e = buf.find(b"/", pos, end)
                    kid = kids.get(key(buf, pos, e if e >= 0 else end))
            at = pos  # where kid's run is to take the topic's levels from
            while True:
                if kid is None:
                    if not sp:
                        return n
                    sp -= 2
                    kid = stack[sp]
                    at = stack[sp + 1]
                    stack[sp] = None  # (no node kept alive by a walk that is over)
                lev = kid.lev
                last = len(lev)
                i = 0
                pos = at
                while True:
                    if pos > end:  # the topic ended first
                        pos = -1
                        break
                    if i < last and lev[i] == _PLUS:  # ('+' is only ever a whole level)
                        e = buf.find(b"/", pos, end)
                        pos = (end if e < 0 else e) + 1
                        i += 2
                    else:
                        e = lev.find(b"/+", i)
                        if e < 0:
                            e = last
                        e -= i  # the length of the literal levels
                        if pos + e > end or not equal_at(lev, i, buf, pos, e)\
                                or pos + e < end and buf[pos + e] != _SLASH:
                            pos = -1
                            break
                        pos += e + 1
                        i += e + 1
                    if i > last:  # (i == last: an empty last level is still to take)
                        break
                if pos >= 0:
                    node = kid
                    break
                kid = kid.next  # another literal level with that key, from the same place
