"""Topic filters, matching, the subscription table and the retained table against plain reference
models of section 4.7 (broker.topics, broker.retain).

The broker matches in place (a topic is buf[start:end] of a larger buffer, the payload after it),
so every topic is embedded between unrelated bytes, taken from the same small alphabet so that a
match that runs past `end` would be caught.
"""
from hypothesis import given, strategies as st

from broker import topics
from broker.retain import KEPT, RetainedTable
from broker.session import Message
from broker.routecache import CachedSubscriptionTable
from broker.subscriptions import SubscriptionTable
from broker.topics import Filter, filter_matches

from mqtt_strategies import examples, filters_any, filters_valid, topic_names, valid_filter

junk = st.sampled_from((b"", b"a", b"/", b"/a", b"a/b", b"#", b"b/$s", b"\xff"))


def ref_matches(filt: bytes, topic: bytes) -> bool:
    """Section 4.7: '+' one level (empty included), '#' the rest and the parent level, and a
    filter starting with a wildcard does not match a topic starting with '$' [MQTT-4.7.2-1]."""
    if topic[:1] == b"$" and filt[:1] in (b"+", b"#"):
        return False
    fl = filt.split(b"/")
    tl = topic.split(b"/")
    for i, f in enumerate(fl):
        if f == b"#":
            return True
        if i >= len(tl):
            return False
        if f != b"+" and f != tl[i]:
            return False
    return len(fl) == len(tl)


@examples()
@given(filters_any | st.binary(max_size=8))
def test_valid_topic_filter_is_the_reference_rule(f):
    utf8 = True
    try:
        f.decode("utf-8")
    except UnicodeError:
        utf8 = False
    assert topics.valid_topic_filter(f) == (valid_filter(f) and utf8 and b"\x00" not in f)


@examples()
@given(topic_names | st.binary(max_size=8), junk, junk)
def test_valid_topic_name_in_place(t, before, after):
    utf8 = True
    try:
        t.decode("utf-8")
    except UnicodeError:
        utf8 = False
    expected = (len(t) > 0 and b"+" not in t and b"#" not in t and b"\x00" not in t and utf8)
    buf = before + t + after
    assert topics.valid_topic_name(buf, len(before), len(before) + len(t)) == expected


@examples()
@given(filters_valid, topic_names, junk, junk)
def test_filter_matches_the_reference(filt, topic, before, after):
    buf = bytearray(before + topic + after)
    got = filter_matches(Filter(filt), buf, len(before), len(before) + len(topic))
    assert got == ref_matches(filt, topic), (filt, topic)
    assert topics.filter_matches_in_place(filt, buf, len(before), len(before) + len(topic)) == got


class _S:
    """A stand-in session for the subscription table."""

    route_mark = 0
    route_qos = 0

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ops = st.lists(st.one_of(
    st.tuples(st.just("sub"), st.integers(0, 3), filters_valid,
              st.integers(0, 2)),
    st.tuples(st.just("unsub"), st.integers(0, 3), filters_valid),
    st.tuples(st.just("drop"), st.integers(0, 3)),
    st.tuples(st.just("route"), topic_names, junk, junk),
), max_size=30)


@examples(0.5)
@given(ops, st.integers(1, 12), st.booleans())
def test_subscription_table_against_a_dict_model(steps, capacity, int_keys):
    """subscribe / unsubscribe / remove_session / collect against {session: {filter: qos}}:
    capacity respected, counts exact, each matching session collected once at its highest QoS.
    Also with a deliberately colliding int key, as MicroPython's 24-bit hash may collide."""
    sessions = [_S("s%d" % i) for i in range(4)]
    table = (SubscriptionTable(capacity, lambda buf, s, e: (e - s) % 3) if int_keys
             else CachedSubscriptionTable(capacity))
    model = {s: {} for s in sessions}  # type: dict
    epoch = 0
    hits = [None] * (len(sessions) + 1)
    for step in steps:
        if step[0] == "sub":
            s, f, q = sessions[step[1]], step[2], step[3]
            r = table.subscribe(s, f, q)
            n = sum(len(m) for m in model.values())
            if f in model[s]:
                assert r == 0
                model[s][f] = q
            elif n >= capacity:
                assert r == -1
            else:
                assert r == 1
                model[s][f] = q
        elif step[0] == "unsub":
            s, f = sessions[step[1]], step[2]
            assert table.unsubscribe(s, f) == (f in model[s])
            model[s].pop(f, None)
        elif step[0] == "drop":
            s = sessions[step[1]]
            assert table.remove_session(s) == len(model[s])
            model[s] = {}
        else:
            topic, before, after = step[1], step[2], step[3]
            epoch += 1
            buf = bytearray(before + topic + after)
            n = table.collect(buf, len(before), len(before) + len(topic), hits, epoch)
            got = {}
            for i in range(n):
                assert hits[i] not in got, "session collected twice"
                got[hits[i]] = hits[i].route_qos
                hits[i] = None
            want = {}
            for s, subs in model.items():
                qs = [q for f, q in subs.items() if ref_matches(f, topic)]
                if qs:
                    want[s] = max(qs)
            assert got == want, (topic, model)
        assert table.count == sum(len(m) for m in model.values()) <= capacity
        for s in sessions:
            assert sorted(table.filters_of(s)) == sorted(model[s].items())
        assert table.exact_count == len({f for m in model.values() for f in m
                                         if not topics.has_wildcard(f)})
        assert table.wildcard_count == len({f for m in model.values() for f in m
                                            if topics.has_wildcard(f)})


@examples(0.5)
@given(st.lists(st.one_of(
    st.tuples(st.just("store"), topic_names, st.binary(max_size=3), st.integers(0, 2)),
    st.tuples(st.just("delete"), topic_names, junk),
    st.tuples(st.just("match"), filters_valid),
), max_size=30), st.integers(1, 6), st.booleans())
def test_retained_table_against_a_dict_model(steps, capacity, int_keys):
    """store / delete / matching against {topic: message}, with the CPython bytes keys and with a
    deliberately colliding int key (as MicroPython's 24-bit hash may collide)."""
    key = (lambda buf, s, e: (e - s) % 3) if int_keys else None
    table = RetainedTable(capacity, key) if key else RetainedTable(capacity)
    model = {}  # type: dict
    for step in steps:
        if step[0] == "store":
            m = Message(bytearray(step[1] + step[2]), len(step[1]), step[3], True)
            ok = table.store(m) == KEPT
            assert ok == (step[1] in model or len(model) < capacity)
            if ok:
                model[step[1]] = m
        elif step[0] == "delete":
            buf = bytearray(step[2] + step[1] + step[2])
            assert table.delete(buf, len(step[2]), len(step[2]) + len(step[1])) == (
                step[1] in model)
            model.pop(step[1], None)
        else:
            got = table.matching(step[1])
            want = [m for t, m in model.items() if ref_matches(step[1], t)]
            assert sorted(map(id, got)) == sorted(map(id, want))
        assert table.count == len(model) <= capacity
