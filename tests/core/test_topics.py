"""Topic names, topic filters and the subscription table (MQTT 3.1.1 section 4.7).

Plain functions with plain asserts: pytest runs them on CPython, tools/mptest.py on MicroPython.
"""
from broker.bytesops import topic_key
from broker.invariants import check_subscriptions
from broker.topics import (
    Filter,
    filter_matches,
    filter_matches_in_place,
    has_wildcard,
    valid_topic_filter,
    valid_topic_name,
)
from support import MPY, SkipTest

if MPY:
    from broker.subscriptions import SubscriptionTable
else:  # the table CPython's broker runs: it remembers what each topic matched
    from broker.routecache import CachedSubscriptionTable as SubscriptionTable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List


class Sess:
    route_mark = 0
    route_qos = 0

    def __init__(self, name: str) -> None:
        self.name = name


def m(filt: bytes, topic: bytes) -> bool:
    """Whether topic matches filt, by both matchers (they must agree)."""
    got = filter_matches(Filter(filt), topic, 0, len(topic))
    assert filter_matches_in_place(filt, topic, 0, len(topic)) == got, (filt, topic)
    return got


def name_ok(topic: bytes) -> bool:
    return valid_topic_name(topic, 0, len(topic))


def tree_empty(table: SubscriptionTable) -> bool:
    """The table holds no level of any wildcard filter (they are given back with the last one),
    and keeps no empty node, list or index (broker.invariants)."""
    return check_subscriptions(table)[1] == 0


def route(table: SubscriptionTable, topic: bytes, epoch: int, nsess: int = 16) -> "Dict[str, int]":
    """Collect for `topic`; return {session name: qos}."""
    hits = [None] * nsess  # type: List[Any]
    n = table.collect(topic, 0, len(topic), hits, epoch)
    out = {}  # type: Dict[str, int]
    for i in range(n):
        s = hits[i]
        assert s.name not in out  # one copy per session
        assert s.route_mark == epoch
        out[s.name] = s.route_qos
    return out


# --- 4.7.1.2 multi-level wildcard --------------------------------------------------------------

def test_multi_level_spec_examples() -> None:
    f = b"sport/tennis/player1/#"
    assert m(f, b"sport/tennis/player1")
    assert m(f, b"sport/tennis/player1/ranking")
    assert m(f, b"sport/tennis/player1/score/wimbledon")
    # "sport/#" also matches the singular "sport", since '#' includes the parent level
    assert m(b"sport/#", b"sport")
    assert m(b"sport/#", b"sport/")
    assert m(b"sport/#", b"sport/tennis")
    assert not m(b"sport/#", b"sports")
    assert not m(b"sport/#", b"spor")
    assert not m(f, b"sport/tennis/player2")
    assert not m(f, b"sport/tennis/player10")
    # "#" is valid and receives every application message
    for t in (b"a", b"/", b"a/b/c", b"//", b"sport/tennis/player1"):
        assert m(b"#", t)


def test_multi_level_validity_mqtt_4_7_1_2() -> None:
    # [MQTT-4.7.1-2] '#' alone in its level, and the last character of the filter
    assert valid_topic_filter(b"#")
    assert valid_topic_filter(b"sport/tennis/#")
    assert valid_topic_filter(b"/#")
    assert valid_topic_filter(b"sport/#")
    assert not valid_topic_filter(b"sport/tennis#")
    assert not valid_topic_filter(b"sport/tennis/#/ranking")
    assert not valid_topic_filter(b"sport/#/x")
    assert not valid_topic_filter(b"#/")
    assert not valid_topic_filter(b"a#")
    assert not valid_topic_filter(b"#a")
    assert not valid_topic_filter(b"##")
    assert not valid_topic_filter(b"#/#")


# --- 4.7.1.3 single-level wildcard -------------------------------------------------------------

def test_single_level_spec_examples() -> None:
    f = b"sport/tennis/+"
    assert m(f, b"sport/tennis/player1")
    assert m(f, b"sport/tennis/player2")
    assert not m(f, b"sport/tennis/player1/ranking")
    # "sport/+" does not match "sport" but does match "sport/"
    assert not m(b"sport/+", b"sport")
    assert m(b"sport/+", b"sport/")
    assert m(b"sport/+/player1", b"sport/tennis/player1")
    assert not m(b"sport/+/player1", b"sport/tennis/player2")
    assert m(b"+/tennis/#", b"sport/tennis")
    assert m(b"+/tennis/#", b"sport/tennis/player1/ranking")
    assert not m(b"+/tennis/#", b"sport/golf")
    # "/finance" matches "+/+" and "/+", but not "+"
    assert m(b"+/+", b"/finance")
    assert m(b"/+", b"/finance")
    assert not m(b"+", b"/finance")
    assert m(b"+", b"finance")


def test_single_level_validity_mqtt_4_7_1_3() -> None:
    # [MQTT-4.7.1-3] '+' must occupy an entire level
    for f in (b"+", b"+/tennis/#", b"sport/+/player1", b"+/+", b"/+", b"+/", b"a/+/b/+"):
        assert valid_topic_filter(f), f
    for f in (b"sport+", b"+a", b"a+", b"a/+b/c", b"++", b"sport/+#", b"+#"):
        assert not valid_topic_filter(f), f


def test_empty_levels() -> None:
    assert m(b"+/+", b"/")
    assert m(b"/", b"/")
    assert m(b"//", b"//")
    assert m(b"+/+/+", b"//")
    assert not m(b"+/+", b"//")
    assert not m(b"+", b"/")
    assert m(b"/#", b"/")
    assert m(b"/#", b"/a/b")
    assert not m(b"/#", b"a")
    assert not m(b"/#", b"a/b")
    assert m(b"a//b", b"a//b")
    assert m(b"a/+/b", b"a//b")
    assert not m(b"a/+/b", b"a/b")
    # a leading or trailing '/' makes a distinct topic (4.7.3)
    assert not m(b"a", b"/a")
    assert not m(b"a", b"a/")
    assert not m(b"/a", b"a")


def test_case_and_spaces() -> None:
    assert not m(b"ACCOUNTS", b"Accounts")
    assert m(b"Accounts payable", b"Accounts payable")
    assert m(b"+/pay able", b"Acc ounts/pay able")


# --- 4.7.2 topics beginning with $ -------------------------------------------------------------

def test_dollar_topics_mqtt_4_7_2_1() -> None:
    # [MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with '$'
    assert not m(b"#", b"$SYS/broker")
    assert not m(b"+/broker", b"$SYS/broker")
    assert not m(b"+/monitor/Clients", b"$SYS/monitor/Clients")
    assert not m(b"+", b"$SYS")
    assert not m(b"+/#", b"$SYS/x")
    assert m(b"$SYS/#", b"$SYS/broker")
    assert m(b"$SYS/#", b"$SYS/broker/clients/total")
    assert m(b"$SYS/monitor/+", b"$SYS/monitor/Clients")
    assert m(b"$SYS/broker", b"$SYS/broker")
    assert m(b"$SYS/+", b"$SYS/broker")
    # '$' elsewhere than the first character is ordinary
    assert m(b"#", b"a/$SYS")
    assert m(b"+/+", b"a/$b")
    assert m(b"+/broker", b"x$/broker")


def test_dollar_needs_both_subscriptions() -> None:
    # a client that wants $SYS/ topics and the rest has to subscribe to "#" and "$SYS/#"
    t = SubscriptionTable(10)
    s = Sess("s")
    assert t.subscribe(s, b"#", 0) == 1
    assert route(t, b"$SYS/broker", 1) == {}
    assert route(t, b"sport", 2) == {"s": 0}
    assert t.subscribe(s, b"$SYS/#", 1) == 1
    assert route(t, b"$SYS/broker", 3) == {"s": 1}
    assert route(t, b"sport", 4) == {"s": 0}


# --- validation ---------------------------------------------------------------------------------

def test_valid_filters() -> None:
    for f in (b"+", b"#", b"/", b"//", b"+/+", b"/#", b"sport/#", b"sport", b"a b/c",
              b"$SYS/#", b"\xc3\xa9t\xc3\xa9/+", b"\xf0\x9f\x98\x80"):
        assert valid_topic_filter(f), f


def test_invalid_filters() -> None:
    for f in (b"", b"sport+", b"sport/#/x", b"#/", b"a#", b"+a", b"a/b#", b"a/#b",
              b"a\x00b", b"\x00", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\xff", b"a/\x80"):
        assert not valid_topic_filter(f), f


def test_has_wildcard() -> None:
    assert has_wildcard(b"+")
    assert has_wildcard(b"a/#")
    assert has_wildcard(b"a/+/b")
    assert not has_wildcard(b"a/b")
    assert not has_wildcard(b"/")
    assert not has_wildcard(b"$SYS/broker")


def test_valid_topic_names() -> None:
    for t in (b"a", b"/", b"//", b"sport/tennis/player1", b"$SYS/broker", b"a b",
              b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xef\xbf\xbf"):
        assert name_ok(t), t


def test_invalid_topic_names() -> None:
    assert not name_ok(b"")  # [MQTT-4.7.3-1]
    for t in (b"+", b"#", b"a/+", b"a/#", b"sport/tennis#", b"a+b"):  # [MQTT-3.3.2-2]
        assert not name_ok(t), t
    assert not name_ok(b"a\x00b")  # U+0000 [MQTT-4.7.3-2]
    assert not name_ok(b"\x00")
    assert not name_ok(b"\xc0\x80")  # overlong U+0000 [MQTT-1.5.3-1]
    assert not name_ok(b"\xc1\xbf")  # overlong
    assert not name_ok(b"\xe0\x80\xaf")  # overlong 3-byte '/'
    assert not name_ok(b"\xed\xa0\x80")  # UTF-16 surrogate U+D800
    assert not name_ok(b"\xed\xbf\xbf")  # surrogate U+DFFF
    assert not name_ok(b"ab\xe2\x82")  # truncated 3-byte sequence
    assert not name_ok(b"\xc3")  # truncated 2-byte sequence
    assert not name_ok(b"\xf0\x9f\x98")  # truncated 4-byte sequence
    assert not name_ok(b"\x80")  # lone continuation byte
    assert not name_ok(b"\xf4\x90\x80\x80")  # above U+10FFFF
    assert not name_ok(b"\xff")


def test_at_most_200_slashes_as_mosquitto() -> None:
    # Not the specification's rule but mosquitto 2.0's (TOPIC_HIERARCHY_LIMIT in its
    # lib/util_topic.c): more than 200 '/' in a topic name or filter is invalid, which bounds how
    # deep a routing walk goes.
    ok = b"/".join([b"a"] * 201)  # 200 '/', 201 levels
    over = ok + b"/a"
    assert name_ok(ok) and not name_ok(over)
    assert name_ok(b"/" * 200) and not name_ok(b"/" * 201)
    assert valid_topic_filter(ok) and not valid_topic_filter(over)
    assert valid_topic_filter(b"+/" * 200 + b"#")
    assert not valid_topic_filter(b"+/" * 201 + b"#")
    assert not valid_topic_filter(b"/" * 201)
    # counted between start and end only
    buf = bytearray(b"/" * 204)
    assert valid_topic_name(buf, 2, 202) and not valid_topic_name(buf, 1, 202)


def test_topic_name_in_place() -> None:
    buf = bytearray(b"xx+#sport/tennis\x00yy")
    assert valid_topic_name(buf, 4, 16)
    assert not valid_topic_name(buf, 4, 17)  # includes the U+0000
    assert not valid_topic_name(buf, 2, 16)  # includes '+'
    assert not valid_topic_name(buf, 3, 16)  # includes '#'
    assert not valid_topic_name(buf, 4, 4)  # empty
    # a sequence cut by `end` is invalid even if the buffer goes on
    buf = bytearray(b"a\xc3\xa9b")
    assert valid_topic_name(buf, 0, 4)
    assert not valid_topic_name(buf, 0, 2)


# --- matching in place --------------------------------------------------------------------------

def test_filter_matches_at_offset() -> None:
    buf = bytearray(b"####sport/tennis/player1/ranking####")
    s = 4
    e = s + len(b"sport/tennis/player1")
    assert filter_matches(Filter(b"sport/tennis/player1"), buf, s, e)
    assert filter_matches(Filter(b"sport/tennis/+"), buf, s, e)
    assert filter_matches(Filter(b"sport/#"), buf, s, e)
    assert filter_matches(Filter(b"#"), buf, s, e)
    # the bytes after `end` never take part
    assert not filter_matches(Filter(b"sport/tennis/player1/ranking"), buf, s, e)
    assert not filter_matches(Filter(b"sport/tennis/player1/#/"[:-2] + b"+"), buf, s, e)
    assert not filter_matches(Filter(b"sport/tennis/player1x"), buf, s, e)
    assert not filter_matches(Filter(b"sport/tennis/player"), buf, s, e)
    assert not filter_matches(Filter(b"sport/tennis/player1/"), buf, s, e)
    assert not filter_matches(Filter(b"+/+/+/+"), buf, s, e)
    assert filter_matches(Filter(b"+/+/+"), buf, s, e)
    # a literal level that would only fit by running past `end`
    buf = bytearray(b"ab/cdef")
    assert not filter_matches(Filter(b"ab/cdef"), buf, 0, 5)
    assert not filter_matches(Filter(b"+/cdef"), buf, 0, 5)
    assert filter_matches(Filter(b"+/cd"), buf, 0, 5)


def test_filter_compiled_fields() -> None:
    f = Filter(b"a/+/#")
    assert f.filt == b"a/+/#"
    assert f.wild
    assert not Filter(b"a/b").wild
    assert Filter(b"+").wild and Filter(b"#").wild


def test_match_table() -> None:
    # (filter, topic, expected) beyond the spec's own examples
    table = (
        (b"a/b/c", b"a/b/c", True),
        (b"a/b/c", b"a/b", False),
        (b"a/b", b"a/b/c", False),
        (b"a/+/c", b"a/x/c", True),
        (b"a/+/c", b"a/x/y/c", False),
        (b"a/+/+", b"a/x/", True),
        (b"+/+/+", b"a/b/c", True),
        (b"+/+/+", b"a/b", False),
        (b"a/#", b"a", True),
        (b"a/#", b"a/", True),
        (b"a/#", b"ab", False),
        (b"a/+/#", b"a", False),
        (b"a/+/#", b"a/b", True),
        (b"a/+/#", b"a/b/c/d", True),
        (b"+/#", b"a", True),
        (b"+/#", b"/", True),
        (b"#", b"/", True),
        (b"+", b"", True),  # not a valid name, but the matcher stays sound
    )
    for filt, topic, expected in table:
        assert valid_topic_filter(filt), filt
        assert m(filt, topic) == expected, (filt, topic)


def test_literal_prefix_edges() -> None:
    # the leading literal levels are tested with one startswith; their boundary must be a level's
    assert m(b"sport/tennis/#", b"sport/tennis")
    assert m(b"sport/tennis/#", b"sport/tennis/")
    assert not m(b"sport/tennis/#", b"sport/tennisX")
    assert not m(b"sport/tennis/#", b"sport/tenni")
    assert not m(b"sport/tennis/#", b"sport")
    assert not m(b"sport/tennis/+", b"sport/tennis")
    assert m(b"a/b/+/c/#", b"a/b/x/c")
    assert m(b"a/b/+/c/#", b"a/b//c/d/e")
    assert not m(b"a/b/+/c/#", b"a/b/x/cd")
    assert not m(b"a/b/+/c/#", b"a/b/x")
    assert m(b"/+", b"/")
    assert not m(b"/+", b"a")
    assert not m(b"/+", b"a/b")
    assert m(b"$SYS/+/x", b"$SYS//x")


def _ref_match(filt: bytes, topic: bytes) -> bool:
    # a plain split-and-compare reading of section 4.7, to cross-check the in-place matcher
    if topic[:1] == b"$" and filt[:1] in (b"+", b"#"):
        return False
    fl = filt.split(b"/")
    tl = topic.split(b"/")
    for i in range(len(fl)):
        if fl[i] == b"#":
            return True
        if i >= len(tl):
            return False
        if fl[i] != b"+" and fl[i] != tl[i]:
            return False
    return len(tl) == len(fl)


def test_matcher_against_reference() -> None:
    words = (b"", b"a", b"b", b"ab", b"$a")
    seed = [12345]

    def rnd(n: int) -> int:
        seed[0] = (seed[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return (seed[0] >> 8) % n

    def gen(wild: bool) -> bytes:
        parts = []  # type: List[bytes]
        for _ in range(1 + rnd(4)):
            if wild and rnd(3) == 0:
                parts.append(b"+")
            else:
                parts.append(words[rnd(len(words))])
        if wild and rnd(3) == 0:
            parts.append(b"#")
        return b"/".join(parts)

    checked = 0
    matched = 0
    for _ in range(300):
        filt = gen(True)
        if not valid_topic_filter(filt):
            continue
        f = Filter(filt)
        for _ in range(10):
            topic = gen(False)
            if not name_ok(topic):
                continue
            buf = bytearray(b"$/" + topic + b"/a/b")
            got = filter_matches(f, buf, 2, 2 + len(topic))
            assert got == _ref_match(filt, topic), (filt, topic)
            assert filter_matches_in_place(filt, buf, 2, 2 + len(topic)) == got, (filt, topic)
            checked += 1
            matched += got
    assert checked > 1000 and 100 < matched < checked - 100


# --- the subscription table ---------------------------------------------------------------------

def test_exact_and_wildcard_routing() -> None:
    t = SubscriptionTable(100)
    a, b, c = Sess("a"), Sess("b"), Sess("c")
    assert t.subscribe(a, b"sport/tennis/player1", 0) == 1
    assert t.subscribe(b, b"sport/tennis/+", 1) == 1
    assert t.subscribe(c, b"sport/#", 2) == 1
    assert t.subscribe(c, b"news", 1) == 1
    assert t.count == 4 and t.exact_count == 2 and t.wildcard_count == 2
    assert route(t, b"sport/tennis/player1", 1) == {"a": 0, "b": 1, "c": 2}
    assert route(t, b"sport/tennis/player2", 2) == {"b": 1, "c": 2}
    assert route(t, b"sport", 3) == {"c": 2}
    assert route(t, b"news", 4) == {"c": 1}
    assert route(t, b"weather", 5) == {}


def test_routing_follows_wildcard_filters_coming_and_going() -> None:
    # On CPython a topic remembers which wildcard filters matched it; every change to the set
    # of wildcard filters must show in the next routing of the same topic.
    t = SubscriptionTable(100)
    a, b = Sess("a"), Sess("b")
    assert t.subscribe(a, b"x/+", 0) == 1
    assert route(t, b"x/y", 1) == {"a": 0}
    assert t.subscribe(b, b"x/#", 1) == 1
    assert route(t, b"x/y", 2) == {"a": 0, "b": 1}
    assert t.subscribe(a, b"x/+", 2) == 0  # the same filter again: its QoS replaced
    assert route(t, b"x/y", 3) == {"a": 2, "b": 1}
    assert t.subscribe(b, b"x/+", 0) == 1  # a second subscriber of a filter already there
    assert route(t, b"x/y", 4) == {"a": 2, "b": 1}
    assert t.unsubscribe(a, b"x/+")
    assert route(t, b"x/y", 5) == {"b": 1}
    assert t.remove_session(b) == 2
    assert route(t, b"x/y", 6) == {}
    assert t.subscribe(a, b"+/y", 1) == 1
    assert route(t, b"x/y", 7) == {"a": 1}
    for i in range(5000):  # more distinct topics than are remembered
        assert route(t, b"t%d/y" % i, 8 + i) == {"a": 1}
    assert route(t, b"x/y", 9000) == {"a": 1}


def test_overlapping_subscriptions_one_hit_max_qos() -> None:
    # [MQTT-3.3.5-1] one copy per session, at the highest QoS of its matching subscriptions
    t = SubscriptionTable(100)
    s = Sess("s")
    o = Sess("o")
    assert t.subscribe(s, b"a/b", 0) == 1
    assert t.subscribe(s, b"a/+", 2) == 1
    assert t.subscribe(s, b"#", 1) == 1
    assert t.subscribe(s, b"a/#", 0) == 1
    assert t.subscribe(o, b"a/b", 1) == 1
    assert route(t, b"a/b", 10) == {"s": 2, "o": 1}
    assert route(t, b"a/c", 11) == {"s": 2}
    assert route(t, b"a", 12) == {"s": 1}
    assert route(t, b"x", 13) == {"s": 1}
    t.unsubscribe(s, b"a/+")
    assert route(t, b"a/b", 14) == {"s": 1, "o": 1}
    # order of discovery does not matter: highest first, lower later
    t2 = SubscriptionTable(10)
    assert t2.subscribe(s, b"a/b", 2) == 1
    assert t2.subscribe(s, b"#", 0) == 1
    assert route(t2, b"a/b", 15) == {"s": 2}


def test_resubscribe_replaces_qos_mqtt_3_8_4_3() -> None:
    # [MQTT-3.8.4-3] same session, identical filter: replace, do not count twice
    t = SubscriptionTable(10)
    s = Sess("s")
    assert t.subscribe(s, b"a/b", 0) == 1
    assert t.subscribe(s, b"a/b", 2) == 0
    assert t.subscribe(s, b"a/+", 1) == 1
    assert t.subscribe(s, b"a/+", 0) == 0
    assert t.count == 2 and t.exact_count == 1 and t.wildcard_count == 1
    assert sorted(t.filters_of(s)) == [(b"a/+", 0), (b"a/b", 2)]
    assert route(t, b"a/b", 1) == {"s": 2}
    assert route(t, b"a/c", 2) == {"s": 0}


def test_capacity_full() -> None:
    t = SubscriptionTable(3)
    a, b = Sess("a"), Sess("b")
    assert t.subscribe(a, b"x", 0) == 1
    assert t.subscribe(a, b"y/+", 0) == 1
    assert t.subscribe(b, b"x", 1) == 1
    assert t.count == 3
    assert t.subscribe(b, b"z", 0) == -1
    assert t.subscribe(b, b"z/#", 0) == -1
    assert t.count == 3 and t.exact_count == 1 and t.wildcard_count == 1
    assert route(t, b"z", 1) == {}
    assert t.filters_of(b) == [(b"x", 1)]
    # replacing still works when full
    assert t.subscribe(b, b"x", 2) == 0
    assert route(t, b"x", 2) == {"a": 0, "b": 2}
    # room again after an unsubscribe
    assert t.unsubscribe(a, b"x")
    assert t.subscribe(b, b"z", 0) == 1
    assert t.count == 3


def test_share_per_session() -> None:
    # one session may hold at most `share` filters (max_subscriptions_per_client): -2 beyond
    t = SubscriptionTable(10)
    a, b = Sess("a"), Sess("b")
    assert t.subscribe(a, b"x/+", 0, 2) == 1
    assert t.subscribe(a, b"y", 0, 2) == 1
    assert t.subscribe(a, b"z/#", 0, 2) == -2
    assert t.subscribe(a, b"x/+", 1, 2) == 0  # replacing a QoS adds nothing
    assert t.subscribe(b, b"z/#", 0, 2) == 1
    assert t.count == 3 and t.wildcard_count == 2
    assert route(t, b"z/q", 1) == {"b": 0} and route(t, b"x/q", 2) == {"a": 1}

def test_unsubscribe() -> None:
    t = SubscriptionTable(10)
    a, b = Sess("a"), Sess("b")
    t.subscribe(a, b"x/y", 1)
    t.subscribe(b, b"x/y", 2)
    t.subscribe(a, b"x/+", 0)
    assert not t.unsubscribe(a, b"nope")
    assert not t.unsubscribe(Sess("z"), b"x/y")
    assert t.unsubscribe(a, b"x/y")
    assert not t.unsubscribe(a, b"x/y")
    assert t.count == 2 and t.exact_count == 1
    assert route(t, b"x/y", 1) == {"a": 0, "b": 2}
    assert t.unsubscribe(b, b"x/y")
    assert t.count == 1 and t.exact_count == 0  # the empty node is gone
    assert route(t, b"x/y", 2) == {"a": 0}
    assert t.unsubscribe(a, b"x/+")
    assert t.count == 0 and t.wildcard_count == 0
    assert route(t, b"x/y", 3) == {}
    assert t.filters_of(a) == [] and t.filters_of(b) == []
    assert check_subscriptions(t) == (0, 0)


def test_remove_session() -> None:
    t = SubscriptionTable(20)
    a, b = Sess("a"), Sess("b")
    for f in (b"a", b"b", b"c/+", b"#"):
        assert t.subscribe(a, f, 1) == 1
    for f in (b"a", b"c/+"):
        assert t.subscribe(b, f, 0) == 1
    assert t.count == 6
    assert t.remove_session(a) == 4
    assert t.remove_session(a) == 0
    assert t.count == 2 and t.exact_count == 1 and t.wildcard_count == 1
    assert t.filters_of(a) == []
    assert route(t, b"a", 1) == {"b": 0}
    assert route(t, b"b", 2) == {}
    assert route(t, b"c/d", 3) == {"b": 0}
    assert t.remove_session(b) == 2
    assert t.count == 0 and t.exact_count == 0 and t.wildcard_count == 0
    assert check_subscriptions(t) == (0, 0)


def test_session_index_many_filters() -> None:
    # a session's index of its filters is a flat list while short and a dict past 8 filters:
    # the same answers on both sides of the change
    t = SubscriptionTable(100)
    a, b = Sess("a"), Sess("b")
    filters = [b"f/%d" % i for i in range(20)] + [b"w/%d/+" % i for i in range(5)]
    for n, f in enumerate(filters):
        assert t.subscribe(a, f, n % 3) == 1
        assert t.subscribe(a, f, n % 3) == 0  # [MQTT-3.8.4-3] replaced, not added
        assert sorted(t.filters_of(a)) == sorted((f, k % 3) for k, f in enumerate(filters[:n + 1]))
        check_subscriptions(t)
    assert t.subscribe(b, b"f/3", 1) == 1
    assert t.subscribe(a, b"f/3", 2) == 0
    assert t.count == 26 and t.exact_count == 20 and t.wildcard_count == 5
    assert route(t, b"f/3", 1) == {"a": 2, "b": 1}
    assert route(t, b"w/4/x", 2) == {"a": 24 % 3}
    assert t.unsubscribe(a, b"f/0") and not t.unsubscribe(a, b"f/0")
    assert t.unsubscribe(a, b"w/4/+")
    assert route(t, b"w/4/x", 3) == {}
    assert sorted(x for x, q in t.filters_of(a)) == sorted(filters[1:24])
    assert t.subscribe(a, b"f/0", 1, 24) == 1 and t.subscribe(a, b"g", 1, 24) == -2
    assert t.remove_session(a) == 24
    assert t.count == 1 and route(t, b"f/3", 4) == {"b": 1}
    check_subscriptions(t)
    # a short index emptied by unsubscribes is gone with its last filter
    for f in (b"x/1", b"x/2", b"x/3"):
        assert t.subscribe(a, f, 0) == 1
    assert t.unsubscribe(a, b"x/2") and sorted(t.filters_of(a)) == [(b"x/1", 0), (b"x/3", 0)]
    assert t.unsubscribe(a, b"x/1") and t.unsubscribe(a, b"x/3")
    assert t.filters_of(a) == [] and t.remove_session(a) == 0
    check_subscriptions(t)


def test_filters_of() -> None:
    t = SubscriptionTable(10)
    a = Sess("a")
    t.subscribe(a, b"x", 0)
    t.subscribe(a, b"y/#", 2)
    t.subscribe(Sess("b"), b"x", 1)
    assert sorted(t.filters_of(a)) == [(b"x", 0), (b"y/#", 2)]


def test_many_subscribers_swap_remove() -> None:
    t = SubscriptionTable(100)
    ss = [Sess(str(i)) for i in range(10)]
    for i in range(10):
        assert t.subscribe(ss[i], b"t", i % 3) == 1
    for i in (0, 5, 9, 3):
        assert t.unsubscribe(ss[i], b"t")
    expect = {}
    for i in (1, 2, 4, 6, 7, 8):
        expect[str(i)] = i % 3
    assert route(t, b"t", 1) == expect
    assert t.exact_count == 1 and t.count == 6


def test_collect_at_offset_in_bytearray() -> None:
    t = SubscriptionTable(10)
    a, b = Sess("a"), Sess("b")
    t.subscribe(a, b"sport/tennis", 1)
    t.subscribe(b, b"sport/+", 2)
    buf = bytearray(64)
    topic = b"sport/tennis"
    off = 7
    buf[off:off + len(topic)] = topic
    buf[off + len(topic):off + len(topic) + 5] = b"/more"  # trailing bytes must not count
    hits = [None] * 4  # type: List[Any]
    n = t.collect(buf, off, off + len(topic), hits, 1)
    got = sorted([(hits[i].name, hits[i].route_qos) for i in range(n)])
    assert got == [("a", 1), ("b", 2)]
    # a prefix of the subscribed topic is not a match
    n = t.collect(buf, off, off + 5, hits, 2)
    assert n == 0
    # one level more ("sport/tennis/more") matches neither
    n = t.collect(buf, off, off + len(topic) + 5, hits, 3)
    assert n == 0


def test_epoch_marks() -> None:
    t = SubscriptionTable(10)
    a = Sess("a")
    t.subscribe(a, b"x", 1)
    hits = [None]  # type: List[Any]
    assert t.collect(b"x", 0, 1, hits, 7) == 1
    assert a.route_mark == 7 and a.route_qos == 1
    # same epoch again: already marked, so not added twice (the caller bumps the epoch)
    assert t.collect(b"x", 0, 1, hits, 7) == 0
    assert t.collect(b"x", 0, 1, hits, 8) == 1


def _same_key(buf: "bytes | bytearray", start: int, end: int) -> int:
    return 7  # every filter collides


def test_colliding_exact_keys() -> None:
    # on MicroPython exact filters are keyed by an int hash: filters sharing a key form a chain
    t = SubscriptionTable(20, key=_same_key)
    a, b, c = Sess("a"), Sess("b"), Sess("c")
    assert t.subscribe(a, b"one", 0) == 1
    assert t.subscribe(b, b"two", 1) == 1
    assert t.subscribe(c, b"three", 2) == 1
    assert t.subscribe(c, b"two", 2) == 1
    assert t.subscribe(a, b"one", 1) == 0  # found along the chain, replaced
    assert t.exact_count == 3 and t.count == 4
    assert check_subscriptions(t) == (3, 0)
    assert route(t, b"one", 1) == {"a": 1}
    assert route(t, b"two", 2) == {"b": 1, "c": 2}
    assert route(t, b"three", 3) == {"c": 2}
    assert route(t, b"four", 4) == {}
    assert route(t, b"thre", 5) == {}
    buf = bytearray(b"..three..")
    hits = [None] * 3  # type: List[Any]
    assert t.collect(buf, 2, 7, hits, 6) == 1 and hits[0] is c
    # unlink from the middle, the head and the tail of the chain
    assert t.unsubscribe(b, b"two")
    assert t.unsubscribe(c, b"two")
    assert t.exact_count == 2
    assert route(t, b"two", 7) == {}
    assert route(t, b"one", 8) == {"a": 1}
    assert route(t, b"three", 9) == {"c": 2}
    assert t.remove_session(c) == 1
    assert route(t, b"one", 10) == {"a": 1}
    assert t.unsubscribe(a, b"one")
    assert check_subscriptions(t) == (0, 0) and t.exact_count == 0 and t.count == 0
    # wildcards are unaffected by the key function
    t.subscribe(a, b"+", 0)
    t.subscribe(b, b"x", 1)
    assert route(t, b"x", 11) == {"a": 0, "b": 1}


def test_distinct_wildcard_nodes_shared() -> None:
    t = SubscriptionTable(50)
    ss = [Sess(str(i)) for i in range(5)]
    for s in ss:
        assert t.subscribe(s, b"a/+", 1) == 1
        assert t.subscribe(s, b"a/b", 0) == 1
    assert t.wildcard_count == 1 and t.exact_count == 1 and t.count == 10
    got = route(t, b"a/b", 1)
    assert len(got) == 5 and all(q == 1 for q in got.values())
    for s in ss[1:]:
        assert t.unsubscribe(s, b"a/+")
    assert t.wildcard_count == 1 and route(t, b"a/c", 2) == {"0": 1}


# --- the tree of wildcard filters ---------------------------------------------------------------

def _rnd(seed: "List[int]", n: int) -> int:
    seed[0] = (seed[0] * 1103515245 + 12345) & 0x7FFFFFFF
    return (seed[0] >> 8) % n


def _gen(seed: "List[int]", wild: bool) -> bytes:
    """A random topic name (or filter, with wild) of 1 to 4 levels from a small alphabet."""
    words = (b"", b"a", b"b", b"ab", b"$a")
    parts = []  # type: List[bytes]
    for _ in range(1 + _rnd(seed, 4)):
        if wild and _rnd(seed, 3) == 0:
            parts.append(b"+")
        else:
            parts.append(words[_rnd(seed, len(words))])
    if wild and _rnd(seed, 3) == 0:
        parts.append(b"#")
    return b"/".join(parts)


def _tree_against_reference(key: "Any") -> None:
    t = SubscriptionTable(1000, key=key)
    seed = [4242]
    sessions = [Sess(str(i)) for i in range(6)]
    held = {}  # type: Dict[Any, int]  # (session index, filter) -> granted QoS
    epoch = 0
    matched = 0
    for step in range(400):
        filt = _gen(seed, True)
        i = _rnd(seed, len(sessions))
        if valid_topic_filter(filt):
            if _rnd(seed, 4) == 0:
                assert t.unsubscribe(sessions[i], filt) == ((i, filt) in held)
                held.pop((i, filt), None)
            else:
                q = _rnd(seed, 3)
                assert t.subscribe(sessions[i], filt, q) == (0 if (i, filt) in held else 1)
                held[(i, filt)] = q
        if step % 40 == 39:  # a session leaves with all its filters
            t.remove_session(sessions[i])
            for k in list(held):
                if k[0] == i:
                    del held[k]
            # the tree is what the filters held make, whatever came and went before
            fresh = SubscriptionTable(1000, key=key)
            for k in held:
                fresh.subscribe(sessions[k[0]], k[1], 0)
            assert tree_runs(t) == tree_runs(fresh)
        topic = _gen(seed, False)
        if not name_ok(topic):
            continue
        want = {}  # type: Dict[str, int]
        for k in held:
            if _ref_match(k[1], topic):
                name = sessions[k[0]].name
                want[name] = max(want.get(name, 0), held[k])
        epoch += 1
        assert route(t, topic, epoch) == want, (topic, held)
        matched += len(want)
    assert t.count == len(held) and matched > 100
    for s in sessions:
        t.remove_session(s)
    assert t.count == 0 and t.wildcard_count == 0 and tree_empty(t)


def test_tree_against_reference() -> None:
    # many filters at once, sharing levels, coming and going: each routed topic gets the
    # sessions _ref_match finds, once each at their highest QoS [MQTT-3.3.5-1], '$' topics
    # unmatched by a leading wildcard [MQTT-4.7.2-1], '#' taking the parent level [MQTT-4.7.1-2]
    _tree_against_reference(topic_key)


def test_tree_with_colliding_keys() -> None:
    # as MicroPython's 24-bit level hashes may collide: every literal level below a level
    # shares one key, told apart byte for byte along the chain
    _tree_against_reference(_same_key)


def test_tree_every_branch_at_once() -> None:
    # Every filter of six levels of 'a' or '+' (64), and '#' after each prefix of them: a topic
    # of six 'a' levels matches all of them, with a '+' branch waiting at every level.
    t = SubscriptionTable(1000)
    ss = []  # type: List[Sess]
    for bits in range(64):
        parts = [b"+" if bits >> k & 1 else b"a" for k in range(6)]
        s = Sess("f%d" % bits)
        ss.append(s)
        assert t.subscribe(s, b"/".join(parts), 1) == 1
        assert t.subscribe(s, b"/".join(parts[:bits % 6] + [b"#"]), 0) == 1
    got = route(t, b"a/a/a/a/a/a", 1, 64)
    assert len(got) == 64 and all(q == 1 for q in got.values())
    got = route(t, b"a/b/a/b/a/b", 2, 64)  # the '+' filters, and '#' where they lead
    assert got["f63"] == 1 and got["f42"] == 1 and got["f0"] == 0 and "f21" not in got
    assert route(t, b"a/a/a/a/a/a/a", 3, 64) == {"f%d" % i: 0 for i in range(64)}
    for s in ss:
        assert t.remove_session(s) == 2
    assert tree_empty(t) and t.wildcard_count == 0


def tree_runs(table: SubscriptionTable) -> "List[bytes]":
    """Every node of the tree as the levels from the root to the end of its run, sorted."""
    out = []  # type: List[bytes]
    todo = [(table.root, b"")]
    while todo:
        node, above = todo.pop()
        below = list(node.kids.values()) if node.kids else []
        for kid in below[:]:
            while kid.next is not None:
                kid = kid.next
                below.append(kid)
        if node.plus is not None:
            below.append(node.plus)
        for kid in below:
            levels = kid.lev if node is table.root else above + b"/" + kid.lev
            out.append(levels)
            todo.append((kid, levels))
    return sorted(out)


def test_tree_runs_part_and_join() -> None:
    # A node holds the levels no two filters part in: a filter costs about its length, however
    # many levels it has; runs part where a filter parts from them and join again when it goes.
    t = SubscriptionTable(20)
    a = Sess("a")
    assert t.subscribe(a, b"a/b/c/+/x", 0) == 1
    assert tree_runs(t) == [b"a/b/c/+/x"]
    assert t.subscribe(a, b"a/b/d/#", 0) == 1
    assert tree_runs(t) == [b"a/b", b"a/b/c/+/x", b"a/b/d"]
    assert t.subscribe(a, b"a/+/c", 1) == 1
    assert tree_runs(t) == [b"a", b"a/+/c", b"a/b", b"a/b/c/+/x", b"a/b/d"]
    assert t.subscribe(a, b"a/b/c/+/y", 2) == 1
    assert tree_runs(t) == [b"a", b"a/+/c", b"a/b", b"a/b/c/+", b"a/b/c/+/x", b"a/b/c/+/y",
                            b"a/b/d"]
    assert t.subscribe(a, b"a/b", 0) == 1  # exact: not in the tree
    assert route(t, b"a/b/c/q/y", 1) == {"a": 2}
    assert route(t, b"a/b/c", 2) == {"a": 1}
    assert route(t, b"a/b/d", 3) == {"a": 0}
    assert t.unsubscribe(a, b"a/+/c")
    assert tree_runs(t) == [b"a/b", b"a/b/c/+", b"a/b/c/+/x", b"a/b/c/+/y", b"a/b/d"]
    assert t.unsubscribe(a, b"a/b/c/+/x")
    assert tree_runs(t) == [b"a/b", b"a/b/c/+/y", b"a/b/d"]
    assert t.unsubscribe(a, b"a/b/d/#")
    assert tree_runs(t) == [b"a/b/c/+/y"]
    assert route(t, b"a/b/c/q/y", 4) == {"a": 2}
    assert t.remove_session(a) == 2 and tree_empty(t)


def test_tree_deepest_filters() -> None:
    # 201 levels, the most a filter may have (see test_at_most_200_slashes_as_mosquitto)
    t = SubscriptionTable(10)
    a, b, c = Sess("a"), Sess("b"), Sess("c")
    deep = b"/".join([b"+"] * 201)
    assert valid_topic_filter(deep)
    assert t.subscribe(a, deep, 0) == 1
    assert t.subscribe(b, b"/".join([b"+"] * 200) + b"/x", 1) == 1
    assert t.subscribe(c, b"/".join([b"l"] * 100) + b"/#", 2) == 1
    topic = b"/".join([b"l"] * 200 + [b"x"])
    assert name_ok(topic)
    assert route(t, topic, 1) == {"a": 0, "b": 1, "c": 2}
    assert route(t, b"/" * 200, 2) == {"a": 0}
    assert route(t, b"/".join([b"l"] * 101), 3) == {"c": 2}
    assert route(t, b"/".join([b"l"] * 99), 4) == {}
    assert t.unsubscribe(a, deep) and t.unsubscribe(b, b"/".join([b"+"] * 200) + b"/x")
    assert route(t, topic, 5) == {"c": 2}
    assert t.unsubscribe(c, b"/".join([b"l"] * 100) + b"/#")
    assert tree_empty(t) and t.wildcard_count == 0


def test_tree_gives_back_only_unused_levels() -> None:
    t = SubscriptionTable(20)
    a, b = Sess("a"), Sess("b")
    for f in (b"x/+/y/#", b"x/+/y", b"x/z/+", b"#", b"+", b"x/z"):
        assert t.subscribe(a, f, 1) == 1
    assert t.subscribe(b, b"x/+/y", 2) == 1
    assert route(t, b"x/z/y", 1) == {"a": 1, "b": 2}
    assert t.unsubscribe(a, b"x/+/y/#")  # its levels are x/+/y's too
    assert route(t, b"x/z/y", 2) == {"a": 1, "b": 2}
    assert route(t, b"x/z/y/w", 3) == {"a": 1}
    assert t.unsubscribe(a, b"x/+/y") and t.unsubscribe(b, b"x/+/y")
    assert route(t, b"x/q/y", 4) == {"a": 1}  # '#' only
    assert route(t, b"x/z/q", 5) == {"a": 1}
    assert t.unsubscribe(a, b"#")
    assert route(t, b"x/z/q", 6) == {"a": 1}  # x/z/+
    assert route(t, b"x/q/y", 7) == {}
    assert route(t, b"x/z", 8) == {"a": 1}  # the exact filter
    assert t.unsubscribe(a, b"x/z/+") and t.unsubscribe(a, b"+")
    assert tree_empty(t) and t.wildcard_count == 0 and t.exact_count == 1
    assert route(t, b"x/z", 9) == {"a": 1}


def test_subscribe_out_of_memory_changes_nothing() -> None:
    # Should the heap run out half way through a subscription (here: the key of one level), the
    # table is as it was: no node of the tree left behind or split, no subscriber, no count.
    failing = [b""]

    def key(buf: "bytes | bytearray", start: int, end: int) -> "bytes | int":
        if end - start == len(failing[0]) and buf[start:end] == failing[0]:
            failing[0] = b""  # once: the rollback finds the heap back
            raise MemoryError
        return topic_key(buf, start, end)

    t = SubscriptionTable(10, key=key)
    a, b = Sess("a"), Sess("b")
    assert t.subscribe(a, b"x/y/+", 1) == 1
    # the first two fail once x/y/+ is split where they part from it, the third before any change
    for filt, lev in ((b"x/y/z/w/#", b"z"), (b"x/q/w/+", b"q"), (b"x/y/+/w", b"w"),
                      (b"e/f", b"e/f")):
        failing[0] = lev
        try:
            t.subscribe(b, filt, 0)
            raise AssertionError(filt)
        except MemoryError:
            pass
        assert t.count == 1 and t.wildcard_count == 1 and t.exact_count == 0, filt
        assert t.filters_of(b) == [], filt
        assert check_subscriptions(t) == (0, 1), filt  # x/y/+'s node, and nothing of b's
    assert route(t, b"x/y/z", 1) == {"a": 1}
    assert route(t, b"x/y/z/w", 2) == {}
    assert t.subscribe(b, b"x/y/+/w", 2) == 1  # no leftovers in the way either
    assert route(t, b"x/y/z/w", 3) == {"b": 2}
    assert t.unsubscribe(a, b"x/y/+") and t.unsubscribe(b, b"x/y/+/w")
    assert tree_empty(t)


def test_cache_bounded_in_bytes() -> None:
    # CPython remembers which wildcard filters matched a topic: by bytes, never by what a
    # client chooses to send (issue 15: 4,096 distinct 65,000-byte topics kept 260 MB)
    if MPY:
        raise SkipTest("the cache is CPython's")
    from broker import routecache
    t = SubscriptionTable(10)
    a = Sess("a")
    assert t.subscribe(a, b"+/x", 0) == 1
    assert t.subscribe(a, b"#", 1) == 1
    for i in range(200):
        topic = b"%d/" % i + b"y" * 65000
        assert route(t, topic, 1 + i) == {"a": 1}
    assert t.cache_bytes == 0  # a topic that long is walked each time, never kept
    for i in range(20000):
        assert route(t, b"%d/x" % i, 1000 + i) == {"a": 1}
        assert t.cache_bytes <= routecache._CACHE_BYTES
    assert 1000 < len(t.cache) and sum([len(k) + 8 for k in t.cache]) <= routecache._CACHE_BYTES
    assert route(t, b"0/x", 30000) == {"a": 1}  # after the cache was emptied on the way


# --- zero allocation on MicroPython -------------------------------------------------------------

def test_collect_no_alloc_under_heap_lock() -> None:
    if not MPY:
        raise SkipTest("heap_lock exists only on MicroPython")
    import micropython

    t = SubscriptionTable(200)
    ss = [Sess(str(i)) for i in range(8)]
    t.subscribe(ss[0], b"sport/tennis/player1", 0)
    t.subscribe(ss[1], b"sport/tennis/player1", 1)
    t.subscribe(ss[1], b"sport/tennis/+", 2)
    t.subscribe(ss[2], b"sport/#", 1)
    t.subscribe(ss[3], b"#", 0)
    t.subscribe(ss[4], b"+/+/player1", 2)
    t.subscribe(ss[5], b"$SYS/#", 1)
    t.subscribe(ss[6], b"news/today", 1)
    t.subscribe(ss[7], b"news/+/sport", 2)
    t.subscribe(ss[7], b"/+", 0)
    names = (b"sport/tennis/player1", b"sport/tennis/player2", b"sport", b"news/today",
             b"news/today/sport", b"$SYS/broker", b"/finance", b"weather/x", b"a/b/player1")
    # each topic sits at a non-zero offset in a larger preallocated bytearray
    bufs = []  # type: List[bytearray]
    starts = []  # type: List[int]
    ends = []  # type: List[int]
    expect = []  # type: List[int]
    epoch = 0
    for nm in names:
        epoch += 1
        b = bytearray(b"##" + nm + b"/xyz")
        bufs.append(b)
        starts.append(2)
        ends.append(2 + len(nm))
        expect.append(len(route(t, nm, epoch)))
    assert expect == [5, 3, 2, 2, 2, 1, 2, 1, 2]
    hits = [None] * len(ss)  # type: List[Any]
    counts = [0] * 1000
    epoch = 100
    k = len(names)
    micropython.heap_lock()
    try:
        i = 0
        while i < 1000:
            j = i % k
            counts[i] = t.collect(bufs[j], starts[j], ends[j], hits, epoch)
            epoch += 1
            i += 1
    finally:
        micropython.heap_unlock()
    for i in range(1000):
        assert counts[i] == expect[i % k], (i, counts[i])
    # the last call's hits are the right sessions at the right QoS
    last = (999 % k)
    assert names[last] == b"sport/tennis/player1"
    got = sorted([(hits[i].name, hits[i].route_qos) for i in range(counts[999])])
    assert got == [("0", 0), ("1", 2), ("2", 1), ("3", 0), ("4", 2)]


def test_walk_no_alloc_under_heap_lock() -> None:
    # The tree of wildcard filters walked with '+' and '#' branches matching at once, at several
    # depths, with a colliding chain of literal levels, for topics at offsets in a bytearray.
    if not MPY:
        raise SkipTest("heap_lock exists only on MicroPython")
    import micropython

    t = SubscriptionTable(200)
    ss = [Sess(str(i)) for i in range(8)]
    filters = (
        (0, b"plant/+/temp", 0), (1, b"plant/#", 1), (2, b"+/+/temp", 2), (3, b"#", 0),
        (4, b"+/line1/#", 1), (5, b"plant/line1/+", 2), (6, b"+/+/+/+", 0),
        (7, b"/".join([b"+"] * 40) + b"/#", 1), (7, b"plant/line2/+", 0), (0, b"$SYS/+", 1),
    )
    for i, f, q in filters:
        assert t.subscribe(ss[i], f, q) == 1
    deep = b"/".join([b"d"] * 60)
    names = (b"plant/line1/temp", b"plant/line2/temp", b"plant", b"x/line1", b"a/b/c/d",
             b"$SYS/broker", deep, b"plant//temp")
    bufs = []  # type: List[bytearray]
    expect = []  # type: List[int]
    epoch = 0
    for nm in names:
        epoch += 1
        bufs.append(bytearray(b"##" + nm + b"/xyz"))
        expect.append(len(route(t, nm, epoch)))
    assert expect == [6, 5, 2, 2, 2, 1, 2, 4]
    hits = [None] * len(ss)  # type: List[Any]
    counts = [0] * 800
    epoch = 100
    k = len(names)
    micropython.heap_lock()
    try:
        i = 0
        while i < 800:
            j = i % k
            counts[i] = t.collect(bufs[j], 2, 2 + len(names[j]), hits, epoch)
            epoch += 1
            i += 1
    finally:
        micropython.heap_unlock()
    for i in range(800):
        assert counts[i] == expect[i % k], (i, counts[i])


def test_validation_and_match_no_alloc_under_heap_lock() -> None:
    if not MPY:
        raise SkipTest("heap_lock exists only on MicroPython")
    import micropython

    buf = bytearray(b"..sport/tennis/player1..")
    f1 = Filter(b"sport/+/player1")
    f2 = Filter(b"sport/#")
    f3 = Filter(b"+/+")
    r = [False] * 4
    micropython.heap_lock()
    try:
        r[0] = valid_topic_name(buf, 2, 22)
        r[1] = filter_matches(f1, buf, 2, 22)
        r[2] = filter_matches(f2, buf, 2, 22)
        r[3] = filter_matches(f3, buf, 2, 22)
    finally:
        micropython.heap_unlock()
    assert r == [True, True, True, False]
