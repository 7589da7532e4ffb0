"""Hypothesis strategies for MQTT 3.1.1 client packets, valid and not, and stream helpers.

Every packet strategy draws (wire bytes, expected fields): the fields are what packets.decode
must give back for the bytes (see `fields`).
"""
from hypothesis import settings, strategies as st

from broker.const import (
    CONNECT, DISCONNECT, PINGREQ, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBSCRIBE, UNSUBSCRIBE,
)

import packets


def examples(weight: float = 1.0) -> settings:
    """Per-property settings: the loaded profile's example count scaled by weight (heavier
    properties run fewer examples), at least 10."""
    return settings(max_examples=max(10, int(settings.default.max_examples * weight)))


# ---- stream helpers -----------------------------------------------------------------------------

def split(data: bytes, cuts: "list[int]") -> "list[bytes]":
    """data cut at the given points (taken modulo len(data) + 1): the pieces, in order."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:]) if b > a] or [b""]


cuts = st.lists(st.integers(0, 1 << 20), max_size=12)


def mutate(data: bytes, ops: "list[tuple[int, int, int]]") -> bytes:
    """Apply (kind, position, value) mutations: 0 flips bits, 1 inserts a byte, 2 deletes one,
    3 overwrites one, 4 truncates."""
    b = bytearray(data)
    for kind, pos, val in ops:
        if not b and kind != 1:
            continue
        i = pos % (len(b) + (1 if kind == 1 else 0))
        if kind == 0:
            b[i] ^= (val & 0xFF) or 1
        elif kind == 1:
            b.insert(i, val & 0xFF)
        elif kind == 2:
            del b[i]
        elif kind == 3:
            b[i] = val & 0xFF
        else:
            del b[i:]
    return bytes(b)


mutations = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1 << 16), st.integers(0, 255)),
                     min_size=1, max_size=4)


def fields(p: packets.Packet) -> tuple:
    """Everything a decoded client packet carries, comparable with ==."""
    c = p.connect
    conn = None
    if c is not None:
        conn = (c.protocol_name, c.protocol_level, c.flags, c.keepalive, c.client_id,
                c.will_topic, c.will_payload, c.will_qos, c.will_retain, c.username, c.password)
    return (p.type, p.flags, p.mid, p.topic, p.payload, p.qos, p.retain, p.dup, tuple(p.topics),
            tuple(p.codes), conn)


# ---- field strategies ---------------------------------------------------------------------------

# MQTT strings: UTF-8 without U+0000 [MQTT-1.5.3-2] (surrogates cannot be encoded anyway).
mqtt_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                    max_size=12)
mqtt_text1 = mqtt_text.filter(lambda s: len(s) > 0)
topic_name_text = st.text(st.characters(blacklist_categories=("Cs",),
                                        blacklist_characters="\x00+#"), min_size=1, max_size=12)
mids = st.integers(1, 65535)
small_bytes = st.binary(max_size=24)


@st.composite
def valid_connect(draw: st.DrawFn) -> "tuple[bytes, tuple]":
    level = draw(st.sampled_from((4, 4, 4, 3)))
    cid = draw(mqtt_text if level == 4 else
               st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                       max_size=23))
    clean = draw(st.booleans())
    keepalive = draw(st.integers(0, 65535))
    will = draw(st.none() | st.tuples(topic_name_text, small_bytes, st.integers(0, 2),
                                      st.booleans()))
    username = draw(st.none() | mqtt_text)
    password = draw(st.none() | small_bytes) if username is not None else None
    kw = dict(clean_session=clean, keepalive=keepalive, username=username, password=password,
              protocol_level=level)
    if will is not None:
        kw.update(will_topic=will[0].encode(), will_payload=will[1], will_qos=will[2],
                  will_retain=will[3])
    data = packets.encode_connect(cid, **kw)  # type: ignore[arg-type]
    flags = ((2 if clean else 0) | (0x80 if username is not None else 0)
             | (0x40 if password is not None else 0))
    if will is not None:
        flags |= 0x04 | (will[2] << 3) | (0x20 if will[3] else 0)
    conn = ("MQTT" if level == 4 else "MQIsdp", level, flags, keepalive, cid,
            None if will is None else will[0].encode(), b"" if will is None else will[1],
            0 if will is None else will[2], False if will is None else will[3],
            username, password)
    return data, (CONNECT, 0, 0, b"", b"", 0, False, False, (), (), conn)


@st.composite
def valid_publish(draw: st.DrawFn) -> "tuple[bytes, tuple]":
    topic = draw(topic_name_text).encode()
    payload = draw(st.binary(max_size=300))
    qos = draw(st.integers(0, 2))
    retain = draw(st.booleans())
    dup = draw(st.booleans()) if qos else False
    mid = draw(mids) if qos else 0
    data = packets.encode_publish(topic, payload, qos, retain, dup, mid)
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    return data, (PUBLISH, flags, mid, topic, payload, qos, retain, dup, (), (), None)


@st.composite
def valid_ack(draw: st.DrawFn) -> "tuple[bytes, tuple]":
    t = draw(st.sampled_from((PUBACK, PUBREC, PUBREL, PUBCOMP)))
    mid = draw(mids)
    return packets.encode_ack(t, mid), (t, 2 if t == PUBREL else 0, mid, b"", b"", 0, False,
                                        False, (), (), None)


@st.composite
def valid_subscribe(draw: st.DrawFn) -> "tuple[bytes, tuple]":
    mid = draw(mids)
    topics = draw(st.lists(st.tuples(mqtt_text1.map(str.encode), st.integers(0, 2)),
                           min_size=1, max_size=5))
    return packets.encode_subscribe(mid, topics), (SUBSCRIBE, 2, mid, b"", b"", 0, False, False,
                                                   tuple(topics), (), None)


@st.composite
def valid_unsubscribe(draw: st.DrawFn) -> "tuple[bytes, tuple]":
    mid = draw(mids)
    filters = draw(st.lists(mqtt_text1.map(str.encode), min_size=1, max_size=5))
    return packets.encode_unsubscribe(mid, filters), (
        UNSUBSCRIBE, 2, mid, b"", b"", 0, False, False, tuple((f, 0) for f in filters), (), None)


def _simple(t: int) -> "tuple[bytes, tuple]":
    return packets.encode_simple(t), (t, 0, 0, b"", b"", 0, False, False, (), (), None)


valid_packet = st.one_of(valid_connect(), valid_publish(), valid_ack(), valid_subscribe(),
                         valid_unsubscribe(), st.just(_simple(PINGREQ)),
                         st.just(_simple(DISCONNECT)))


# ---- engine-level strategies: small alphabets so that topics, filters and ids collide ------------

LEVELS = ("a", "b", "", "$s")
_INNER = ("a", "b", "")  # '$' only opens a topic here (legal elsewhere, but it is the rule's case)


@st.composite
def _topic_name(draw: st.DrawFn) -> bytes:
    first = draw(st.sampled_from(LEVELS))
    rest = draw(st.lists(st.sampled_from(_INNER), max_size=2))
    t = "/".join([first] + rest)
    return (t or "a").encode()


@st.composite
def _valid_filter(draw: st.DrawFn) -> bytes:
    levels = [draw(st.sampled_from(LEVELS + ("+", "+")))]
    levels += draw(st.lists(st.sampled_from(_INNER + ("+",)), max_size=2))
    if draw(st.booleans()):
        levels = levels[:-1] if draw(st.booleans()) else levels
        levels.append("#")
    return ("/".join(levels) or "a").encode()


topic_names = _topic_name()
filters_valid = _valid_filter()
# A topic filter, valid or not, as it falls: the same levels plus misplaced wildcards.
filters_any = st.one_of(
    filters_valid,
    st.lists(st.sampled_from(LEVELS + ("+", "#", "a#", "+b")), min_size=1, max_size=3).map(
        lambda ls: "/".join(ls).encode()))


def valid_filter(f: bytes) -> bool:
    """The reference rule for topic filters (section 4.7.1)."""
    if not f:
        return False
    levels = f.split(b"/")
    for i, lev in enumerate(levels):
        if b"+" in lev and lev != b"+":
            return False
        if b"#" in lev and (lev != b"#" or i != len(levels) - 1):
            return False
    return True
