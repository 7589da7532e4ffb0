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


def topic_key(buf: "Buffer", start: int, end: int) -> "Key":
    if start == 0 and end == len(buf) and isinstance(buf, bytes):
        return buf  # a whole filter or topic kept as a key: no copy of it beside it
    return bytes(memoryview(buf)[start:end])


def copy_into(dst: bytearray, dpos: int, src: "Buffer", spos: int, n: int) -> None:
    dst[dpos:dpos + n] = memoryview(src)[spos:spos + n]


def equal_at(a: "Buffer", apos: int, b: "Buffer", bpos: int, n: int) -> bool:
    return memoryview(a)[apos:apos + n] == memoryview(b)[bpos:bpos + n]


def utf8_valid(buf: "Buffer", start: int, end: int) -> bool:
    # CPython's strict UTF-8 codec already rejects overlong forms and surrogates
    # [MQTT-1.5.3-1]; U+0000 is the one code point MQTT adds [MQTT-1.5.3-2].
    if buf.find(b"\x00", start, end) >= 0:
        return False
    try:
        str(memoryview(buf)[start:end], "utf-8")
    except UnicodeError:
        return False
    return True
