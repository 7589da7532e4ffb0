"""Shared subscriptions, `$share/{ShareName}/{filter}` (MQTT 5.0 section 4.8.2): each message
matching the filter goes to one member of the group (the ShareName and the filter), in turn.
Loaded by the first SUBSCRIBE of one, from a client of any version: mosquitto 2.0 takes them
from 3.1.1 clients too.

A group is one entry of its filter's subscriber list in broker.subscriptions' table (the Group
where a session goes, 0 where its options go), so that routing marks it as it marks a session;
the table's collect then hands hits to `pick`, which puts in the group's place the member whose
turn it is, with that member's options. The members are a subscriber list of their own, [s0, o0,
s1, o1, ...], held by the table's index of each member session under the whole filter
(`$share/g/f`): each member subscription is one entry of the table (max_subscriptions,
max_subscriptions_per_client), renewed and removed as any other. A member whose client is offline
takes its turn too, and the message waits in its session, as mosquitto 2.0 does.
"""
from broker.bytesops import const
from broker.codec import MalformedPacket
from broker.subscriptions import _drop, merge_options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional
    from broker.subscriptions import SubscriptionTable

_PREFIX = const(7)  # len(b"$share/")
_OPTION_NO_LOCAL = const(0x04)
_RC_PROTOCOL_ERROR = const(0x82)


class Group:
    """The members of one shared subscription (filt: the whole `$share/...` filter)."""

    def __init__(self, filt: bytes) -> None:
        self.filt = filt
        self.members = []  # type: List[Any]
        self.cursor = 0  # where in members the session whose turn it is stands
        # what routing sets on a session (broker.subscriptions.mark), made here: not while routing
        self.route_mark = 0
        self.route_qos = 0


def filter_start(filt: bytes) -> int:
    """Where the Topic Filter of shared subscription filt begins, or -1 where filt breaks the
    rules: a ShareName at least one character long [MQTT-4.8.2-1], without '/', '+' or '#', then
    '/' and a Topic Filter [MQTT-4.8.2-2]."""
    e = filt.find(b"/", _PREFIX)
    if e <= _PREFIX or e + 1 >= len(filt)\
            or filt.find(b"+", _PREFIX, e) >= 0 or filt.find(b"#", _PREFIX, e) >= 0:
        return -1
    return e + 1


def check(filt: bytes, o: int) -> None:
    """A shared subscription's filter [MQTT-4.8.2-1] [MQTT-4.8.2-2] and options
    [MQTT-3.8.3-4] (o: an MQTT 5 SUBSCRIBE's options byte): a Protocol Error else."""
    if filter_start(filt) < 0:
        e = MalformedPacket("invalid shared subscription")
    elif o & _OPTION_NO_LOCAL:
        e = MalformedPacket("No Local on a shared subscription")
    else:
        return
    e.reason = _RC_PROTOCOL_ERROR
    raise e


def members(t: "SubscriptionTable", filt: bytes, create: bool) -> "Optional[List[Any]]":
    """The members of shared subscription filt (its group made where missing, with create), or
    None."""
    k = filter_start(filt)
    if k < 0:
        if create:
            raise ValueError("invalid shared subscription %r" % filt)
        return None
    inner = filt[k:]
    subs = t._subs(inner, create)
    if subs is None:
        return None
    for i in range(0, len(subs), 2):
        g = subs[i]
        if type(g) is Group and g.filt == filt:
            return g.members
    if not create:
        return None
    g = Group(filt)
    subs.extend((g, 0))
    if len(subs) == 2:
        t.held(inner, 1)
    t.groups += 1
    t.pick = pick
    return g.members


def remove(t: "SubscriptionTable", filt: bytes, gone: "Optional[List[Any]]") -> None:
    """Take out the group of shared subscription filt whose members gone are gone (None: it
    was never made), and its filter's list when nothing else is in it."""
    inner = filt[filter_start(filt):]
    subs = t._subs(inner, False)
    if subs is None:
        return
    for i in range(0, len(subs), 2):
        if type(subs[i]) is Group and subs[i].members is gone:
            _drop(subs, i)
            t.groups -= 1
            if not subs:
                t._remove(inner, subs)
                t.held(inner, -1)
            return
    if not subs:  # made for a group that did not come
        t._remove(inner, subs)


def room(t: "SubscriptionTable") -> None:
    """Room in the broker's hits for every session with a subscription and every group, one of
    each more to come: routing puts each of them there once at most (before pick)."""
    hits = t.hits
    if hits is None:
        return
    need = len(t._by_session) + t.groups + 3
    if len(hits) < need:
        hits.extend([None] * need)


def pick(hits: "List[Any]", n: int, epoch: int) -> int:
    """Put in the place of each group in hits[0:n] the member whose turn it is, round robin,
    with its options: the message's QoS is capped by that member's granted QoS [MQTT-4.8.2-3];
    a member already in hits takes the group's options into its own (one copy per session).
    Returns the new n. Allocation-free on MicroPython."""
    i = 0
    while i < n:
        g = hits[i]
        if type(g) is not Group:
            i += 1
            continue
        subs = g.members
        k = g.cursor
        if k >= len(subs):
            k = 0
        g.cursor = k + 2
        s = subs[k]
        o = subs[k + 1]
        if s.route_mark != epoch:
            s.route_mark = epoch
            s.route_qos = o
            hits[i] = s
            i += 1
        else:
            if o != s.route_qos:
                s.route_qos = merge_options(s.route_qos, o)
            n -= 1
            hits[i] = hits[n]
            hits[n] = None
    return n
