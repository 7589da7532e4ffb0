"""The invariants of the engine's tables, one function per table, for the tests (and for
debugging): they read the tables' insides, so that no test has to, and change with them. An
AssertionError says which invariant is broken. Never loaded by the broker; not on a board.
"""
from broker.subscriptions import _find, index_items

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional, Tuple
    from broker.engine import Broker
    from broker.filtertree import Node
    from broker.subscriptions import SubscriptionTable


def _listed(subs: "List[Any]", groups: "List[int]") -> int:
    """The entries of a filter's subscriber list: a shared subscription's group (broker.shared)
    holds its members', and is never kept without one; groups[0] counts the groups."""
    n = 0
    for i in range(0, len(subs), 2):
        if hasattr(subs[i], "members"):
            assert subs[i].members, "a shared subscription's group kept with no member"
            n += len(subs[i].members)
            groups[0] += 1
        else:
            n += 2
    return n


def check_subscriptions(table: "SubscriptionTable") -> "Tuple[int, int]":
    """broker.subscriptions: every subscription is in its session's index and in its filter's
    list (or its shared subscription's group), once; the counts are exact; no index, list or
    node is kept empty. Returns the nodes in use: exact filters, and nodes of the tree of
    wildcard filters."""
    groups = [0]
    held = 0
    for session, mine in table._by_session.items():
        assert mine, "an empty index kept for a session"
        for filt, subs in index_items(mine):
            assert subs is table._subs(filt, False) and _find(subs, session) >= 0, filt
            held += 1
    listed = 0
    exact = 0
    for head in table._exact.values():
        chain = head  # type: Optional[Node]
        while chain is not None:
            assert chain.subs, "an exact filter kept with no subscriber"
            listed += _listed(chain.subs, groups)
            exact += 1
            chain = chain.next
    assert exact == table.exact_count
    lists = 0
    tree = 0
    todo = [table.root]
    while todo:
        node = todo.pop()
        below = 0
        for first in (node.kids or {}).values():
            kid = first  # type: Optional[Node]
            while kid is not None:
                todo.append(kid)
                below += 1
                kid = kid.next
        if node.plus is not None:
            todo.append(node.plus)
            below += 1
        for kept in (node.subs, node.hash):
            if kept is not None:
                assert kept, "a wildcard filter kept with no subscriber"
                listed += _listed(kept, groups)
                lists += 1
        if node is not table.root:
            assert below or node.subs or node.hash, "an empty node kept"
            tree += 1
    assert lists == table.wildcard_count
    assert held == table.count == listed // 2 <= table.capacity
    assert groups[0] == table.groups
    return exact, tree


def check_write_queue(broker: "Broker") -> None:
    """broker.output's write queue: a connection is in it once, exactly when it says so
    (in_wq), or its output would never be flushed, or be flushed twice."""
    queued = set()
    for conn in broker.wq:
        assert conn.in_wq and conn not in queued, conn.peer
        queued.add(conn)
    for conn in broker.conns:
        assert conn.in_wq == (conn in queued), conn.peer
