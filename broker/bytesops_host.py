"""CPython's forms of broker.bytesops' primitives (see there): slices of memoryviews, each one
call into C. Only CPython imports this module; a board does not carry it."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar, Union
    Buffer = Union[bytes, bytearray]
    Key = Union[bytes, int]
    F = TypeVar("F", bound=Callable[..., Any])


def const(x: int) -> int:
    return x


class micropython:  # noqa: N801
    """CPython's stand-in for the decorators MicroPython's compiler acts on: the hot-path
    modules write `@micropython.native` (machine code on MicroPython; see tools/mpy_source.py
    for the board builds that leave it out) and import this name from here."""

    @staticmethod
    def native(f: "F") -> "F":
        return f


# Below this many bytes, a slice's copy costs less than the memoryview objects that would spare
# it (about 90 against 260 ns for 80 bytes, 144 against 308 ns for 1,500; CPython 3.11).
_VIEW_FROM = 4096


def piece(buf: "Buffer", pos: int, n: int) -> "Union[bytes, bytearray, memoryview]":
    """buf[pos:pos + n] to read once: a copy when small, a view otherwise."""
    if n < _VIEW_FROM:
        return buf[pos:pos + n]
    return memoryview(buf)[pos:pos + n]


def topic_key(buf: "Buffer", start: int, end: int) -> "Key":
    if isinstance(buf, bytes):
        if start == 0 and end == len(buf):
            return buf  # a whole filter or topic kept as a key: no copy of it beside it
        return buf[start:end]
    return bytes(buf[start:end])


def copy_into(dst: bytearray, dpos: int, src: "Buffer", spos: int, n: int) -> None:
    dst[dpos:dpos + n] = piece(src, spos, n)


def equal_at(a: "Buffer", apos: int, b: "Buffer", bpos: int, n: int) -> bool:
    return piece(a, apos, n) == piece(b, bpos, n)


def utf8_valid(buf: "Buffer", start: int, end: int) -> bool:
    # CPython's strict UTF-8 codec already rejects overlong forms and surrogates
    # [MQTT-1.5.3-1]; U+0000 is the one code point MQTT adds [MQTT-1.5.3-2].
    s = piece(buf, start, end - start)
    if isinstance(s, memoryview):
        if buf.find(b"\x00", start, end) >= 0:
            return False
    elif 0 in s:  # an int: memchr (b"\x00" would be tried as an int first, and fail slowly)
        return False
    elif s.isascii():
        return True
    try:
        str(s, "utf-8")
    except UnicodeError:
        return False
    return True
