"""Topic names and topic filters: validation and matching (MQTT 3.1.1 section 4.7). The table
of subscriptions is broker.subscriptions.

Topics and filters are bytes end to end. The routing path (`valid_topic_name`, `filter_matches`)
works on a buffer plus integer offsets and allocates nothing on MicroPython: no slices, no
tuples, no bound methods, no strings.

Valid filters: "#", "+", "/", "//", "+/+", "/#", "sport/#", "sport/+/player1", "+/tennis/#".
Invalid filters: "", "sport+", "+a", "a#", "#/", "sport/#/x", "sport/tennis#", anything with U+0000
or bad UTF-8, and, as in mosquitto 2.0, a filter or topic name with more than 200 '/' (201 levels:
TOPIC_HIERARCHY_LIMIT in its lib/util_topic.c), which bounds how deep the routing walk goes.
"""
from broker.bytesops import const, utf8_valid

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Tuple, Union
    Buffer = Union[bytes, bytearray]


_SLASH = const(0x2F)   # '/'
_PLUS = const(0x2B)    # '+'
_HASH = const(0x23)    # '#'
_DOLLAR = const(0x24)  # '$'
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
    """A SUBSCRIBE/UNSUBSCRIBE topic filter (length limit: the caller's).

    One pass over the bytes: compiled (CPython), each read is a native one, where each
    bytes.find would be a method call with its arguments parsed."""
    n = len(filt)
    if n == 0:  # [MQTT-4.7.3-1]
        return False
    slashes = 0
    level = 0  # where the current level begins
    ascii = True
    for i in range(n):
        c = filt[i]
        if c == _SLASH:
            slashes += 1
            level = i + 1
        elif c == _PLUS:
            if i != level or (i + 1 < n and filt[i + 1] != _SLASH):
                return False  # '+' must occupy a whole level [MQTT-4.7.1-3]
        elif c == _HASH:
            if i != level or i + 1 != n:
                return False  # '#' alone in the last level [MQTT-4.7.1-2]
        elif c == 0 or c > 0x7F:
            ascii = False
    if slashes > _SLASHES_MAX:
        return False
    return ascii or utf8_valid(filt, 0, n)  # UTF-8, no U+0000 [MQTT-1.5.3-1] [MQTT-4.7.3-2]


def has_wildcard(filt: bytes) -> bool:
    # a loop, not `b"+" in filt` (CPython tries the operand as an int first and formats a
    # TypeError) nor two bytes.find calls (see valid_topic_filter)
    for c in filt:
        if c == _PLUS or c == _HASH:
            return True
    return False


class Filter:
    """A compiled topic filter.

    `prefix` is the run of literal levels before the first '+' (joined, without the '/' that
    follows them; None when the filter starts with '+' or '#'), tested with one startswith.
    `levels` holds the levels after it, up to a trailing '#': the level's bytes, or None for '+'.
    `hash` is True when the filter ends in '#'; `nodollar` when its first character is a
    wildcard, so that it does not match topics beginning with '$' [MQTT-4.7.2-1].
    """

    # Defaults on the class (docs/design.md).
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


def filter_matches_in_place(filt: bytes, buf: "Buffer", start: int, end: int) -> bool:
    """Does the topic name buf[start:end] match the filter filt, as bytes? filter_matches()
    without a compiled Filter: compiling a deep filter makes an object per level (3.7 KB for
    60 levels on a board), where a SUBSCRIBE looking up retained messages needs one match."""
    n = len(filt)
    if n and (filt[0] == _PLUS or filt[0] == _HASH) and start < end and buf[start] == _DOLLAR:
        return False  # [MQTT-4.7.2-1]
    i = 0
    p = start
    while i < n:
        c = filt[i]
        if c == _HASH:  # the last level: what is left of the topic, even nothing
            return True
        if c == _PLUS:  # one level, the empty one included
            p = buf.find(b"/", p, end)
            if p < 0:
                p = end
            i += 1
        else:
            while i < n and filt[i] != _SLASH:
                if p >= end or buf[p] != filt[i]:
                    return False
                i += 1
                p += 1
            if p < end and buf[p] != _SLASH:
                return False
        if i == n:
            return p == end
        if p == end:  # the topic is used up: "/#" takes the parent level [MQTT-4.7.1-2]
            return i + 2 == n and filt[i + 1] == _HASH
        i += 1
        p += 1
    return p == end
