"""The tree of wildcard topic filters (mosquitto's "subhier"): its nodes, and how a filter goes in
and comes out. broker.subscriptions keeps its wildcard filters in it and routes along it.

Each node holds a run of levels ("a/+/b") that no two filters part in: a filter that shares no
level with another is one node, however many levels it has, so that it costs about its length, as
a compiled filter did; a run parts where a new filter parts from it and joins again once no filter
does. Below a node, the nodes whose runs begin with a literal level are in a dict keyed like the
exact filters (bytes on CPython, bytesops.topic_key's int hash on MicroPython, chains checked byte
for byte), so that routing finds the one a topic's level leads to with one lookup.

Its own module, apart from broker.subscriptions, for the compile heap (docs/design.md,
"MicroPython's ways").
"""
from broker.bytesops import const, equal_at

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple, Union
    Buffer = Union[bytes, bytearray]
    KeyFunc = Callable[[Buffer, int, int], Union[bytes, int]]


_SLASH = const(0x2F)  # '/'
_PLUS = const(0x2B)   # '+'
_HASH = const(0x23)   # '#'


# A node. `lev`: its run, levels of a filter ('+' included) that follow its parent's. Below it:
# `kids`, the nodes whose run begins with a literal level, keyed by that level (chains through
# `next`); `plus`, the node whose run begins with '+'; `hash`, the subscribers of the filter
# ending in '#' here; `subs`, of the filter ending here: one flat list, session then granted QoS,
# [s0, q0, s1, q1, ...]. broker.subscriptions keeps each exact filter in one too: `lev` the
# filter, `subs`, and `next` along a chain of its dict. Defaults on the class (docs/design.md).
class Node:
    kids = None  # type: Optional[Dict[Union[bytes, int], Node]]
    plus = None  # type: Optional[Node]
    hash = None  # type: Optional[List[Any]]
    subs = None  # type: Optional[List[Any]]
    lev = b""
    next = None  # type: Optional[Node]


def unchain(chains: "Dict[Any, Any]", key: "Union[bytes, int]", item: "Any") -> None:
    """Take item out of chains[key], a chain through `next`."""
    head = chains[key]
    if head is item:
        if item.next is None:
            del chains[key]
        else:
            chains[key] = item.next
        return
    while head.next is not item:
        head = head.next
    head.next = item.next


def _stop(filt: bytes) -> int:
    """Where the levels of filter filt that go in the tree end: before a trailing '#' (-1: none)."""
    return len(filt) - 2 if filt[-1] == _HASH else len(filt)


def _first(lev: bytes) -> int:
    """The length of the first level of run lev."""
    i = lev.find(b"/")
    return len(lev) if i < 0 else i


def _move(src: Node, dst: Node) -> None:
    """What is below src goes below dst (attributes set only when needed: MicroPython's heap)."""
    if src.kids is not None:
        dst.kids = src.kids
        src.kids = None
    if src.plus is not None:
        dst.plus = src.plus
        src.plus = None
    if src.hash is not None:
        dst.hash = src.hash
        src.hash = None
    if src.subs is not None:
        dst.subs = src.subs
        src.subs = None


class FilterTree:
    """The tree. A filter goes in and comes out in place, through offsets into it: its levels as
    objects would be garbage on every SUBSCRIBE, as many as the filter has levels."""

    def __init__(self, key: "KeyFunc") -> None:
        self._key = key
        self.root = Node()
        self.root.kids = {}  # never replaced: _lit shares it
        # The root as a topic beginning with '$' sees it: no '+' or '#' level [MQTT-4.7.2-1].
        self._lit = Node()
        self._lit.kids = self.root.kids
        # The routing walk's '+' nodes still to try, two slots each (node, topic offset): at most
        # one per node on the way down, so per level of the deepest filter; sized as a filter
        # comes, never while routing.
        self._stack = []  # type: List[Any]

    def _kid(self, node: Node, filt: bytes, pos: int, e: int) -> "Optional[Node]":
        """The node below node whose run begins with level filt[pos:e]."""
        if e - pos == 1 and filt[pos] == _PLUS:
            return node.plus
        kids = node.kids
        kid = None if kids is None else kids.get(self._key(filt, pos, e))
        while kid is not None and (_first(kid.lev) != e - pos
                                   or not equal_at(kid.lev, 0, filt, pos, e - pos)):
            kid = kid.next
        return kid

    def _attach(self, node: Node, kid: Node) -> None:
        lev = kid.lev
        n = _first(lev)
        if n == 1 and lev[0] == _PLUS:
            node.plus = kid
            return
        k = self._key(lev, 0, n)
        if node.kids is None:
            node.kids = {}
        if k in node.kids:
            kid.next = node.kids[k]
        node.kids[k] = kid

    def _path(self, filt: bytes) -> "Tuple[List[Node], bool]":
        """The nodes whose runs are the first levels of filt, the root first, and whether they
        are all of them (the last node is then where the filter ends)."""
        stop = _stop(filt)
        node = self.root
        path = [node]
        pos = 0
        while pos <= stop:
            e = filt.find(b"/", pos, stop)
            kid = self._kid(node, filt, pos, stop if e < 0 else e)
            if kid is None:
                return path, False
            n = len(kid.lev)
            if pos + n > stop or not equal_at(kid.lev, 0, filt, pos, n)\
                    or pos + n < stop and filt[pos + n] != _SLASH:
                return path, False
            path.append(kid)
            node = kid
            pos += n + 1
        return path, True

    def node(self, filt: bytes, create: bool) -> "Optional[Node]":
        """The node where wildcard filter filt ends (its subscribers: `subs`, or `hash` when it
        ends in '#'), made where missing with create, else None when there is none."""
        if not create:
            path, whole = self._path(filt)
            return path[-1] if whole else None
        need = 2 * filt.count(b"/") + 4
        if len(self._stack) < need:
            self._stack = [None] * need  # before the tree grows: a walk never outgrows it
        stop = _stop(filt)
        node = self.root
        pos = 0
        while pos <= stop:
            e = filt.find(b"/", pos, stop)
            kid = self._kid(node, filt, pos, stop if e < 0 else e)
            if kid is None:
                kid = Node()
                # a filter alone below the root is its own run: no copy
                kid.lev = filt if pos == 0 and stop == len(filt) else filt[pos:stop]
                self._attach(node, kid)
                return kid
            run = kid.lev
            k = 0  # bytes in common
            while k < len(run) and pos + k < stop and run[k] == filt[pos + k]:
                k += 1
            if k < len(run) or pos + k < stop and filt[pos + k] != _SLASH:
                # the filter parts from the run: so does the run, after their last level in
                # common (the first one at least: _kid found the run by it)
                k = k if pos + k == stop and run[k] == _SLASH else run.rfind(b"/", 0, k)
                tail = Node()
                tail.lev = run[k + 1:]
                _move(kid, tail)
                kid.lev = run[:k]
                self._attach(kid, tail)
            node = kid
            pos += k + 1
        return node

    def prune(self, filt: bytes, subs: "Optional[List[Any]]") -> None:
        """Take out wildcard filter filt's subscriber list subs, empty now (None: it was never
        made), and what no filter needs any more: nodes with nothing below, runs parted where no
        filter parts from them."""
        path, _ = self._path(filt)
        i = len(path) - 1
        node = path[i]
        if subs is not None:
            if node.hash is subs:
                node.hash = None
            elif node.subs is subs:
                node.subs = None
        while i:
            i -= 1
            up = path[i]
            if node.hash is None and node.subs is None:
                kids = node.kids
                kid = node.plus
                if kids is not None:
                    kid = None if kid is not None or len(kids) > 1 else next(iter(kids.values()))
                if kid is not None and kid.next is None:  # its only node below: one run again
                    if kids is None:
                        node.plus = None
                    else:
                        node.kids = None
                    node.lev = node.lev + b"/" + kid.lev
                    _move(kid, node)
                elif kids is None and node.plus is None:  # nothing below: gone
                    if up.plus is node:
                        up.plus = None
                    else:
                        kids = up.kids
                        assert kids is not None
                        unchain(kids, self._key(node.lev, 0, _first(node.lev)), node)
                        if not kids and up is not self.root:
                            up.kids = None
            node = up
        root = self.root
        if not root.kids and root.plus is None and root.hash is None:
            self._stack = []
