"""Byte-level primitives the hot path needs, in the fastest allocation-free form each runtime has.

Everything works on a buffer plus integer offsets so that no caller ever slices.
"""
import sys

MPY = sys.implementation.name == "micropython"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar, Union
    Buffer = Union[bytes, bytearray]
    Key = Union[bytes, int]
    F = TypeVar("F", bound=Callable[..., Any])


if MPY:
    import micropython
    from micropython import const

    # Viper: machine-word loops over raw bytes, about 16 times faster than bytecode and
    # allocation-free. Every int stays below 2**30 so that nothing becomes a heap int on a board.

    @micropython.viper
    def topic_key(buf: ptr8, start: int, end: int) -> int:
        # djb2 kept to 24 bits: a dict key built without allocating.
        h = 5381
        i = start
        while i < end:
            h = ((h << 5) + h + buf[i]) & 0xFFFFFF
            i += 1
        return h

    @micropython.viper
    def copy_into(dst: ptr8, dpos: int, src: ptr8, spos: int, n: int):
        i = 0
        while i < n:
            dst[dpos + i] = src[spos + i]
            i += 1

    @micropython.viper
    def equal_at(a: ptr8, apos: int, b: ptr8, bpos: int, n: int) -> bool:
        i = 0
        while i < n:
            if a[apos + i] != b[bpos + i]:
                return False
            i += 1
        return True

    @micropython.viper
    def utf8_valid(buf: ptr8, start: int, end: int) -> bool:
        i = start
        while i < end:
            c = buf[i]
            i += 1
            if c < 0x80:
                if c == 0:
                    return False
                continue
            lo = 0x80
            hi = 0xBF
            if 0xC2 <= c <= 0xDF:
                need = 1
            elif 0xE0 <= c <= 0xEF:
                need = 2
                if c == 0xE0:
                    lo = 0xA0
                elif c == 0xED:
                    hi = 0x9F
            elif 0xF0 <= c <= 0xF4:
                need = 3
                if c == 0xF0:
                    lo = 0x90
                elif c == 0xF4:
                    hi = 0x8F
            else:
                return False
            if i + need > end:
                return False
            c = buf[i]
            if c < lo or c > hi:
                return False
            i += 1
            need -= 1
            while need > 0:
                c = buf[i]
                if c < 0x80 or c > 0xBF:
                    return False
                i += 1
                need -= 1
        return True

else:
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
